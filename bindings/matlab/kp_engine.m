function old = kp_engine(name)
%KP_ENGINE  The libkp engine that runs later reductions.
%   OLD = KP_ENGINE(NAME) selects 'cpu' (the default), 'opencl' (the first
%   OpenCL device), 'cuda' (CUDA device 0) or 'auto', and returns the previous
%   name; KP_ENGINE() only returns it. Octave/MATLAB arrays live in host
%   memory: the GPU engines copy them to the device and back at each call.
%   An engine that cannot run on this machine is an error libkp:unsupported
%   with libkp's reason (e.g. no OpenCL platform), and the engine stays as it
%   was. The setting lasts until the MEX file is cleared.
if nargin == 0
  old = kp_mex('engine');
else
  if isa(name, 'string'), name = char(name); end
  old = kp_mex('engine', lower(name));
end
end
