function a = kp_kernel_product(x, y, b, kernel, sigma, mode)
%KP_KERNEL_PRODUCT  Kernel product a_i = sum_j k(x_i, y_j) b_j, in O(N + M) memory.
%   A = KP_KERNEL_PRODUCT(X, Y, B) with X (N x D), Y (M x D), B (M x E) gives
%   A (N x E) for the Gaussian kernel of width 1.
%   A = KP_KERNEL_PRODUCT(X, Y, B, KERNEL, SIGMA) with KERNEL one of (r = |x-y|)
%       'gaussian'              exp(-r^2 / sigma^2)
%       'laplacian'             exp(-r / sigma)
%       'cauchy'                1 / (1 + r^2 / sigma^2)
%       'inverse_multiquadric'  1 / sqrt(1 + r^2 / sigma^2)
%       'energy'                -r                      (no sigma)
%       'linear'                <x, y>                  (no sigma)
%   A = KP_KERNEL_PRODUCT(..., MODE) with MODE 'sum' (default) or 'lse':
%   a_i = log sum_j exp(log k(x_i, y_j) + b_j), the log-domain version.
%   Double or single inputs (the result has their class). The formula is parsed
%   once per session and shape (cached by the MEX gateway).
%
%   Example:
%     x = rand(1e5, 3); y = rand(1e5, 3); b = rand(1e5, 1);
%     a = kp_kernel_product(x, y, b, 'gaussian', 0.1);
%
%   See also KP_GENRED, KP_GRAD.
if nargin < 3
  error('libkp:argument', 'libkp: kp_kernel_product needs x, y and b');
end
if nargin < 4 || isempty(kernel), kernel = 'gaussian'; end
if nargin < 5 || isempty(sigma), sigma = 1; end
if nargin < 6 || isempty(mode), mode = 'sum'; end
if ~ischar(kernel) || ~ischar(mode)
  error('libkp:argument', 'libkp: kernel and mode must be names such as ''gaussian'' and ''sum''');
end
if ~isnumeric(x) || ~isnumeric(y) || ~isnumeric(b)
  error('libkp:dtype', 'libkp: x, y and b must be numeric (double or single) matrices');
end
e = size(b, 2);
if isrow(b) && size(y, 1) ~= 1, e = 1; end
% handles by kernel, mode and dimensions: building one costs about 1 ms of
% interpreted code, a lookup here a few microseconds
persistent keys handles uses_sigma
ckey = sprintf('%s|%s|%d|%d|%d', lower(kernel), lower(mode), size(x, 2), size(y, 2), e);
hit = find(strcmp(keys, ckey), 1);
if isempty(hit)
  [f, us] = make_handle(lower(kernel), lower(mode), size(x, 2), size(y, 2), e);
  if numel(keys) >= 64, keys = {}; handles = {}; uses_sigma = []; end
  keys{end + 1} = ckey; handles{end + 1} = f; uses_sigma(end + 1) = us;
  hit = numel(keys);
end
if ~uses_sigma(hit), sigma = 1; end   % p unused: any number
f = handles{hit};
a = f(x, y, sigma, b);
end

function [f, us] = make_handle(kernel, mode, dx, dy, e)
% value formula, log formula, uses sigma (p: sigma as a Pm(1) parameter)
switch kernel
  case {'gaussian', 'gauss'}
    k = {'Exp(-SqDist(x,y)*Inv(Square(p)))', '(-SqDist(x,y)*Inv(Square(p)))', true};
  case 'laplacian'
    k = {'Exp(-Norm2(x-y)*Inv(p))', '(-Norm2(x-y)*Inv(p))', true};
  case 'cauchy'
    k = {'Inv(1+SqDist(x,y)*Inv(Square(p)))', '(-Log(1+SqDist(x,y)*Inv(Square(p))))', true};
  case {'inverse_multiquadric', 'imq'}
    k = {'Rsqrt(1+SqDist(x,y)*Inv(Square(p)))', '(-0.5*Log(1+SqDist(x,y)*Inv(Square(p))))', true};
  case 'energy'
    k = {'(-Norm2(x-y))', 'Log(-Norm2(x-y))', false};
  case 'linear'
    k = {'(x|y)', 'Log((x|y))', false};
  otherwise
    error('libkp:argument', ['libkp: unknown kernel ''%s''; known kernels: cauchy, energy, ' ...
          'gaussian, inverse_multiquadric, laplacian, linear'], kernel);
end
aliases = {sprintf('x = Vi(%d)', dx), sprintf('y = Vj(%d)', dy), 'p = Pm(1)', sprintf('b = Vj(%d)', e)};
switch mode
  case 'sum'
    f = kp_genred(sprintf('%s*b', k{1}), aliases, 'Sum', 1);
  case 'lse'
    f = kp_genred(sprintf('%s+b', k{2}), aliases, 'LogSumExp', 1);
  otherwise
    error('libkp:argument', 'libkp: mode must be ''sum'' or ''lse''');
end
us = k{3};
end
