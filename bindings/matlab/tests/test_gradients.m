function cases = test_gradients()
% kp_grad against central finite differences (float64): the directional
% derivative of <F(args), E> along a random V equals <G(args, E), V>.
cases = {
  'sum_x', @() sum_case(1, 1)
  'sum_y', @() sum_case(1, 2)
  'sum_param', @() sum_case(1, 3)
  'sum_w', @() sum_case(1, 4)
  'sum_axis0_x', @() sum_case(0, 1)
  'sum_axis0_y', @() sum_case(0, 2)
  'logsumexp_x', @() lse_case(1)
  'logsumexp_y', @() lse_case(2)
  'logsumexp_param', @() lse_case(3)
  'softmax_x', @() softmax_case(1)
  'softmax_y_reduced_axis', @() softmax_case(2)
  'softmax_w', @() softmax_case(4)
  'min_x', @() min_case('Min', 1, 1)
  'min_y', @() min_case('Min', 2, 1)
  'max_argmax_x', @() min_case('Max_ArgMax', 1, 1)
  'kmin_y', @() min_case('KMin', 2, 3)
  'argmin_is_zero', @argmin_case
  'vector_param_keeps_shape', @vector_param_case
  'by_name_and_number', @name_case
  'hessian_vector', @hessian_case
  'single_matches_double', @single_case
};
end

function [x, y, w, c] = data(N, M)
rand('seed', 2); randn('seed', 2); %#ok<RAND>
x = rand(N, 3); y = rand(M, 3); w = randn(M, 2); c = randn(M, 1);
end

function check_fd(f, g, args, k, E)
randn('seed', 3); %#ok<RAND>
V = randn(size(args{k}));
h = 1e-6;
ap = args; ap{k} = args{k} + h * V;
am = args; am{k} = args{k} - h * V;
fp = f(ap{:}); fm = f(am{:});
fd = (sum(E(:) .* fp(:)) - sum(E(:) .* fm(:))) / (2 * h);
gk = g(args{:}, E);
if ~isequal(size(gk), size(args{k}))
  error('gradient size %s, input size %s', mat2str(size(gk)), mat2str(size(args{k})));
end
an = sum(gk(:) .* V(:));
if abs(fd - an) > 1e-6 * max(1, abs(an))
  error('finite differences %.10g, gradient %.10g', fd, an);
end
end

function sum_case(axis, k)
[x, y, w] = data(60, 80);
if axis == 0, w = w(1:60, :); side = 'i'; else, side = 'j'; end
f = kp_genred('Exp(-SqDist(x,y)*g)*w', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', ['w = V' side '(2)']}, 'Sum', axis);
args = {x, y, 2.5, w};
E = randn(size(f(args{:})));
check_fd(f, kp_grad(f, k), args, k, E);
end

function lse_case(k)
[x, y, ~, c] = data(60, 80);
f = kp_genred('-SqDist(x,y)*g+c', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'c = Vj(1)'}, 'LogSumExp', 1);
args = {x, y, 2.5, c};
check_fd(f, kp_grad(f, k), args, k, randn(60, 1));
end

function softmax_case(k)
[x, y, w, c] = data(60, 80);
f = kp_genred('-SqDist(x,y)*g+c', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'w = Vj(2)', 'c = Vj(1)'}, ...
              'SumSoftMaxWeight', 1, 'w');
args = {x, y, 2.5, w, c};
check_fd(f, kp_grad(f, k), args, k, randn(60, 2));
end

function min_case(red, k, K)
[x, y] = data(60, 80);
if K > 1
  f = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, red, 1, K);
else
  f = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, red, 1);
end
args = {x, y};
E = randn(60, K);
check_fd(@(varargin) first_output(f, varargin{:}), kp_grad(f, k), args, k, E);
end

function v = first_output(f, varargin)
v = f(varargin{:});
end

function argmin_case()
[x, y] = data(20, 30);
f = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, 'ArgMin', 1);
gx = kp_grad(f, 1);
gv = gx(x, y, ones(20, 1));
if ~isequal(gv, zeros(20, 3)), error('ArgMin gradient is not zero'); end
end

function vector_param_case()
% a 1 x 3 parameter gets a 1 x 3 gradient, a 3 x 1 one a 3 x 1 gradient
[x, y, w] = data(40, 50);
f = kp_genred('Exp(-WeightedSqDist(s,x,y))*w', {'x = Vi(3)', 'y = Vj(3)', 's = Pm(3)', 'w = Vj(2)'}, 'Sum', 1);
E = randn(40, 2);
check_fd(f, kp_grad(f, 's'), {x, y, [1 2 3], w}, 3, E);
check_fd(f, kp_grad(f, 's'), {x, y, [1; 2; 3], w}, 3, E);
end

function name_case()
[x, y, w] = data(30, 40);
f = kp_genred('Exp(-SqDist(x,y)*g)*w', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'w = Vj(2)'}, 'Sum', 1);
E = randn(30, 2);
a = kp_grad(f, 'y'); b = kp_grad(f, 2);
if ~isequal(a(x, y, 1.5, w, E), b(x, y, 1.5, w, E)), error('by name and by number differ'); end
% explicit positions: y is input 1 here
f2 = kp_genred('Exp(-SqDist(x,y))', {'x = Vi(1,3)', 'y = Vj(0,3)'}, 'Sum', 1);
g2 = kp_grad(f2, 'x');
info = kp_info(g2);
if ~strcmp(info.categories, 'jii'), error('categories %s, expected jii', info.categories); end
check_fd(f2, g2, {y, x}, 2, randn(30, 1));
end

function hessian_case()
% second derivatives: the gradient of the x-gradient, along x
[x, y, w] = data(40, 50);
f = kp_genred('Exp(-SqDist(x,y)*g)*w', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'w = Vj(2)'}, 'Sum', 1);
gx = kp_grad(f, 'x');
gxx = kp_grad(gx, 'x');
E = randn(40, 2);
check_fd(gx, gxx, {x, y, 1.5, w, E}, 1, randn(40, 3));
gxy = kp_grad(gx, 'y');
check_fd(gx, gxy, {x, y, 1.5, w, E}, 2, randn(40, 3));
end

function single_case()
[x, y, w] = data(50, 70);
f = kp_genred('Exp(-SqDist(x,y)*g)*w', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'w = Vj(2)'}, 'Sum', 1);
E = randn(50, 2);
for k = [1 2 3 4]
  g = kp_grad(f, k);
  gd = g(x, y, 1.5, w, E);
  gs = g(single(x), single(y), 1.5, single(w), single(E));
  if ~isa(gs, 'single'), error('single inputs gave a %s gradient', class(gs)); end
  assert_close(gs, gd, 1e-4, sprintf('gradient %d', k));
end
end
