function [f, info] = kp_genred(formula, aliases, reduction, axis, opt)
%KP_GENRED  A libkp kernel reduction as a function handle.
%   F = KP_GENRED(FORMULA, ALIASES, REDUCTION, AXIS) parses the formula once
%   and returns a handle F(A1, ..., An) computing, without any N x M matrix,
%
%       AXIS = 1:  out(i,:) = Red_j FORMULA(x_i, y_j, p)   (one row per i)
%       AXIS = 0:  out(j,:) = Red_i FORMULA(x_i, y_j, p)   (one row per j)
%
%   FORMULA  KeOps syntax, e.g. 'Exp(-SqDist(x,y)*g)*b'.
%   ALIASES  cell of 'name = Vi(d)', 'name = Vj(d)', 'name = Pm(d)' (or with
%            explicit positions, 'x = Vi(0,3)'); inputs of F come in alias order.
%   REDUCTION a reduction of libkp ('Sum', 'LogSumExp', 'SumSoftMaxWeight',
%            'Min', 'Max', 'ArgMin', 'ArgMax', 'Min_ArgMin', 'Max_ArgMax',
%            'KMin', 'ArgKMin', 'KMin_ArgKMin'; kp_mex('reductions') lists
%            them as kp.h does, with what each takes and gives).
%   F = KP_GENRED(FORMULA, ALIASES, REDUCTION, AXIS, K) for the K-reductions;
%   F = KP_GENRED(FORMULA, ALIASES, 'SumSoftMaxWeight', AXIS, WEIGHTS) with the
%   weight formula; F = KP_GENRED(TEXT, ALIASES) with a complete reduction text
%   such as 'Sum_Reduction(Exp(-SqDist(x,y))*b, 1)'.
%
%   Inputs of F: a Vi/Vj variable of dimension D is an N x D matrix (a point
%   per row; a row vector is taken as points when D = 1); a Pm parameter is a
%   vector of D numbers. All double (float64) or all single (float32); a double
%   parameter next to single data is converted. Inputs are not copied.
%   Batches: N x D x B1 x ... x Bk arrays are reduced batch by batch (output
%   rows x width x B1 x ... x Bk); inputs with extent 1 or without batch
%   dimensions are shared by all batches (a batched parameter is 1 x D x B...).
%   Outputs: values (rows x width, in the inputs' class); Arg* reductions give
%   1-based indices as doubles; Min_ArgMin and the like give [VALUES, INDICES].
%   Errors are raised with identifiers libkp:formula, libkp:shape,
%   libkp:dtype, libkp:argument, ... and libkp's message.
%
%   [F, INFO] = KP_GENRED(...) also returns a description of the formula
%   (inputs and their categories/dimensions, output widths, canonical text).
%
%   Example:
%     f = kp_genred('Exp(-SqDist(x,y)*g)*b', {'x = Vi(3)', 'y = Vj(3)', ...
%                   'g = Pm(1)', 'b = Vj(1)'}, 'Sum', 1);
%     a = f(x, y, 0.5, b);     % x: N x 3, y: M x 3, b: M x 1 -> a: N x 1
%
%   See also KP_GRAD, KP_KERNEL_PRODUCT, KP_KNN, KP_THREADS.
persistent reds
% MATLAB string objects ("x = Vi(3)") as character arrays / cells of them
if nargin >= 1 && isa(formula, 'string'), formula = char(formula); end
if nargin >= 2 && isa(aliases, 'string'), aliases = cellstr(aliases); end
if nargin >= 3 && isa(reduction, 'string'), reduction = char(reduction); end
if nargin >= 5 && isa(opt, 'string'), opt = char(opt); end
if nargin < 1 || ~ischar(formula) || isempty(strtrim(formula)) || size(formula, 1) ~= 1
  error('libkp:argument', 'libkp: the formula must be a non-empty character row');
end
if nargin < 2 || isempty(aliases)
  aliases = {};
elseif ischar(aliases)
  aliases = {aliases};
elseif ~iscellstr(aliases)
  error('libkp:argument', 'libkp: aliases must be a cell array of strings such as ''x = Vi(3)''');
end
if nargin == 3
  error('libkp:argument', 'libkp: give both the reduction and the axis (0: reduce over i, 1: over j)');
end
if nargin <= 2
  text = formula;
else
  if ~ischar(reduction) || isempty(reduction)
    error('libkp:argument', 'libkp: the reduction must be a name such as ''Sum'' or ''ArgKMin''');
  end
  reduction = regexprep(reduction, '_Reduction$', '');
  if ~isnumeric(axis) || ~isscalar(axis) || ~any(axis == [0 1])
    error('libkp:argument', 'libkp: axis must be 0 (reduce over i) or 1 (reduce over j)');
  end
  % what the reduction takes, as kp.h says (kp_reduction_flags)
  if isempty(reds), reds = kp_mex('reductions'); end
  r = find(strcmp({reds.name}, reduction), 1);
  if isempty(r)
    error('libkp:formula', 'libkp: unknown reduction ''%s''; libkp''s reductions: %s', reduction, ...
          strjoin({reds.name}, ', '));
  end
  if reds(r).takes_k
    if nargin < 5 || ~isnumeric(opt) || ~isscalar(opt) || ~isreal(opt) || opt < 1 || opt ~= round(opt)
      error('libkp:argument', 'libkp: %s takes K, a positive integer: kp_genred(formula, aliases, ''%s'', axis, K)', ...
            reduction, reduction);
    end
    text = sprintf('%s_Reduction(%s,%d,%d)', reduction, formula, opt, axis);
  elseif reds(r).takes_g
    if nargin < 5 || ~ischar(opt)
      error('libkp:argument', 'libkp: %s takes a second formula (the weights) as its fifth input', reduction);
    end
    text = sprintf('%s_Reduction(%s,%d,%s)', reduction, formula, axis, opt);
  elseif nargin >= 5
    error('libkp:argument', 'libkp: %s takes no fifth input (K or weights)', reduction);
  else
    text = sprintf('%s_Reduction(%s,%d)', reduction, formula, axis);
  end
end
% the cache key of the gateway: the text, then one alias per line
text(text == sprintf('\n') | text == sprintf('\r')) = ' ';
key = strjoin([{text}, reshape(aliases, 1, [])], sprintf('\n'));
deriv = '';
info = kp_mex('info', key, deriv);   % parses now: formula errors surface here
f = @(varargin) kp_mex('call', key, deriv, varargin{:});
end
