function info = kp_info(f)
%KP_INFO  Description of a libkp handle from KP_GENRED or KP_GRAD.
%   INFO = KP_INFO(F) returns a struct: nargs (inputs F takes), categories (a
%   character per input: 'i' Vi, 'j' Vj, 'p' Pm, '-' unused), dims (their
%   dimensions), axis, out_dim (width of the values, 0 if none), out_index_dim
%   (width of the indices, 0 if none), sums_rows and formula (canonical text).
[key, deriv] = kp_handle_key(f);
info = kp_mex('info', key, deriv);
end
