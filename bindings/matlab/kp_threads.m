function old = kp_threads(n)
%KP_THREADS  Number of CPU threads of libkp's reductions.
%   OLD = KP_THREADS(N) sets it (0: the KP_NUM_THREADS environment variable if
%   set, else all cores) and returns the previous setting; KP_THREADS() only
%   returns it. Results are bit-identical for any thread count. The setting
%   lasts until the MEX file is cleared (clear kp_mex / clear all).
if nargin == 0
  old = kp_mex('threads');
else
  if isnumeric(n) && isreal(n), n = double(n); end
  old = kp_mex('threads', n);
end
end
