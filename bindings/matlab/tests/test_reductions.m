function cases = test_reductions()
% Every reduction of libkp, both axes, double and single, against dense
% float64 computations in Octave/MATLAB (N = 150, M = 230: not tile multiples).
% The list is kp.h's (kp_mex('reductions')): a reduction libkp gains fails
% here until it has a dense check.
cases = {};
kph = kp_mex('reductions');
reds = [{kph.name}, {'MinVector'}];
classes = {'double', 'single'};
for r = 1:numel(reds)
  for c = 1:2
    for axis = [1 0]
      name = sprintf('%s_%s_axis%d', reds{r}, classes{c}, axis);
      cases(end + 1, :) = {name, @() check(reds{r}, classes{c}, axis)}; %#ok<AGROW>
    end
  end
end
end

function check(red, cls, axis)
rand('seed', 1); %#ok<RAND>
N = 150; M = 230; K = 4;
x = rand(N, 3); y = rand(M, 3); g = 3.5;
rtol = 1e-12;
if strcmp(cls, 'single'), rtol = 2e-5; end
if axis == 1   % rows: x (i); reduced: y (j)
  side = 'j'; R = sqdist(x, y); nw = M; xr = x; yq = y;
else           % rows: y (j); reduced: x (i)
  side = 'i'; R = sqdist(x, y)'; nw = N; xr = y; yq = x;
end
w = rand(nw, 2); c = rand(nw, 1);
al = {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', sprintf('w = V%s(2)', side), sprintf('c = V%s(1)', side)};
cv = @(a) cast(a, cls);
in = {cv(x), cv(y), g, cv(w), cv(c)};
switch red
  case 'Sum'
    f = kp_genred('Exp(-SqDist(x,y)*g)*w', al, 'Sum', axis);
    assert_close(f(in{:}), exp(-g * R) * w, rtol, red);
  case 'LogSumExp'
    f = kp_genred('-SqDist(x,y)*g+c', al, 'LogSumExp', axis);
    A = -g * R + c';
    assert_close(f(in{:}), log(sum(exp(A), 2)), rtol, red);
  case 'SumSoftMaxWeight'
    f = kp_genred('-SqDist(x,y)*g+c', al, 'SumSoftMaxWeight', axis, 'w');
    E = exp(-g * R + c');
    assert_close(f(in{:}), (E * w) ./ sum(E, 2), rtol, red);
  case {'Min', 'Max', 'ArgMin', 'ArgMax', 'Min_ArgMin', 'Max_ArgMax'}
    f = kp_genred('SqDist(x,y)', al(1:2), red, axis);
    if strncmp(red, 'Max', 3) || strcmp(red, 'ArgMax')
      [v, j] = max(R, [], 2);
    else
      [v, j] = min(R, [], 2);
    end
    if strncmp(red, 'Arg', 3)
      check_indices(f(in{1:2}), j, v, R, cls, red);
    elseif numel(red) > 3
      [gv, gj] = f(in{1:2});
      assert_close(gv, v, rtol, red);
      check_indices(gj, j, v, R, cls, red);
    else
      assert_close(f(in{1:2}), v, rtol, red);
    end
  case {'KMin', 'ArgKMin', 'KMin_ArgKMin'}
    f = kp_genred('SqDist(x,y)', al(1:2), red, axis, K);
    [s, si] = sort(R, 2);
    v = s(:, 1:K); j = si(:, 1:K);
    if strcmp(red, 'KMin')
      assert_close(f(in{1:2}), v, rtol, red);
    elseif strcmp(red, 'ArgKMin')
      check_indices(f(in{1:2}), j, v, R, cls, red);
    else
      [gv, gj] = f(in{1:2});
      assert_close(gv, v, rtol, red);
      check_indices(gj, j, v, R, cls, red);
    end
  case 'MinVector'   % a 3-vector formula: the minimum of each component
    f = kp_genred('Abs(x-y)', al(1:2), 'Min', axis);
    want = zeros(size(xr, 1), 3);
    for d = 1:3
      want(:, d) = min(abs(xr(:, d) - yq(:, d)'), [], 2);
    end
    assert_close(f(in{1:2}), want, rtol, red);
  otherwise
    error('no dense check for the reduction %s of kp.h', red);
end
end

function check_indices(got, want, v, R, cls, what)
% 1-based double indices; in double exactly the dense ones, in single ones
% whose float64 values equal the selected values (near-ties may swap).
if ~isa(got, 'double'), error('%s: indices are %s, expected double', what, class(got)); end
if ~isequal(size(got), size(want)), error('%s: index size %s', what, mat2str(size(got))); end
if strcmp(cls, 'double')
  if ~isequal(got, want), error('%s: indices differ from the dense ones', what); end
else
  rows = repmat((1:size(R, 1))', 1, size(got, 2));
  assert_close(R(sub2ind(size(R), rows, got)), v, 1e-5, [what ' values at indices']);
end
end
