function [g, info] = kp_grad(f, var)
%KP_GRAD  Gradient of a libkp reduction, as another reduction.
%   G = KP_GRAD(F, VAR) for a handle F from KP_GENRED (or KP_GRAD) returns a
%   handle G(A1, ..., An, E) computing the vector-Jacobian product
%
%       d < F(A1, ..., An), E > / d A_VAR
%
%   where E has the shape of F's output. VAR is the input number (1-based) or
%   the alias name ('x'). The result has the shape of input VAR (one row per
%   point of a Vi/Vj variable; a parameter's gradient is summed over points;
%   an input shared by several batches gets the sum over those batches).
%   The forward results some gradients need (LogSumExp and SumSoftMaxWeight
%   outputs, Min/Max/KMin indices) are computed inside G.
%   Gradients of gradients (Hessian-vector products) work through Sum
%   reductions: KP_GRAD(KP_GRAD(F, 'x'), 'x').
%
%   Example:
%     f  = kp_genred('Exp(-SqDist(x,y))*b', {'x=Vi(2)','y=Vj(2)','b=Vj(1)'}, 'Sum', 1);
%     gx = kp_grad(f, 'x');
%     dx = gx(x, y, b, ones(size(x, 1), 1));    % N x 2
%
%   See also KP_GENRED.
[key, deriv] = kp_handle_key(f);
if ischar(var)
  pos = kp_mex('position', key, var);
  if pos == 0
    error('libkp:argument', 'libkp: ''%s'' is not a variable of the formula', var);
  end
elseif isnumeric(var) && isscalar(var) && isreal(var) && var >= 1 && var == round(var)
  pos = double(var);
else
  error('libkp:argument', 'libkp: VAR must be an input number (1-based) or an alias name');
end
step = sprintf('g%d', pos - 1);
if isempty(deriv)
  deriv = step;
else
  deriv = [deriv '/' step];
end
info = kp_mex('info', key, deriv);   % builds the gradient now: errors surface here
g = @(varargin) kp_mex('call', key, deriv, varargin{:});
end
