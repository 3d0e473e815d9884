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
% value formula, log formula, uses sigma (p: sigma as a Pm(1) parameter)
switch lower(kernel)
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
if ~isnumeric(x) || ~isnumeric(y) || ~isnumeric(b)
  error('libkp:dtype', 'libkp: x, y and b must be numeric (double or single) matrices');
end
d = size(x, 2);
e = size(b, 2);
if isrow(b) && size(y, 1) ~= 1, e = 1; end
aliases = {sprintf('x = Vi(%d)', d), sprintf('y = Vj(%d)', size(y, 2)), 'p = Pm(1)', sprintf('b = Vj(%d)', e)};
switch lower(mode)
  case 'sum'
    f = kp_genred(sprintf('%s*b', k{1}), aliases, 'Sum', 1);
  case 'lse'
    f = kp_genred(sprintf('%s+b', k{2}), aliases, 'LogSumExp', 1);
  otherwise
    error('libkp:argument', 'libkp: mode must be ''sum'' or ''lse''');
end
if ~k{3}, sigma = 1; end   % p unused: any number
a = f(x, y, sigma, b);
end
