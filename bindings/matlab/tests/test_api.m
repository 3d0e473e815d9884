function cases = test_api()
% kp_kernel_product, kp_knn, kp_threads, kp_info and handle behaviour.
cases = {
  'kernel_product_kernels', @kernels
  'kernel_product_lse', @kernel_lse
  'kernel_product_single', @kernel_single
  'kernel_product_unknown', @() expect_error(@() kp_kernel_product(rand(3, 2), rand(4, 2), rand(4, 1), 'gaussien'), 'libkp:argument', 'unknown kernel')
  'knn_indices_1_based', @knn
  'knn_single', @knn_single
  'threads_bit_identical', @threads
  'full_reduction_text', @full_text
  'row_vector_for_dimension_1', @row_vector
  'wide_variables', @column_slices
  'cache_cleared_handles_still_work', @cleared
  'info', @info
  'fewer_outputs_than_the_reduction_has', @fewer_outputs
};
end

function kernels()
rand('seed', 4); %#ok<RAND>
x = rand(70, 2); y = rand(90, 2); b = rand(90, 3); s = 0.7;
D = sqdist(x, y); r = sqrt(D);
want = {exp(-D / s^2), exp(-r / s), 1 ./ (1 + D / s^2), 1 ./ sqrt(1 + D / s^2), -r, x * y'};
names = {'gaussian', 'laplacian', 'cauchy', 'inverse_multiquadric', 'energy', 'linear'};
for k = 1:numel(names)
  assert_close(kp_kernel_product(x, y, b, names{k}, s), want{k} * b, 1e-12, names{k});
end
end

function kernel_lse()
rand('seed', 5); %#ok<RAND>
x = rand(70, 2); y = rand(90, 2); b = rand(90, 1); s = 0.3;
A = -sqdist(x, y) / s^2 + b';
m = max(A, [], 2);
assert_close(kp_kernel_product(x, y, b, 'gaussian', s, 'lse'), m + log(sum(exp(A - m), 2)), 1e-12, 'lse');
end

function kernel_single()
rand('seed', 6); %#ok<RAND>
x = rand(70, 3); y = rand(90, 3); b = rand(90, 1);
a = kp_kernel_product(single(x), single(y), single(b), 'gaussian', 0.5);
if ~isa(a, 'single'), error('class %s', class(a)); end
assert_close(a, exp(-sqdist(x, y) / 0.25) * b, 2e-6, 'single');
end

function knn()
rand('seed', 7); %#ok<RAND>
x = rand(40, 3); y = rand(300, 3);
[idx, d2] = kp_knn(x, y, 5);
[s, si] = sort(sqdist(x, y), 2);
if ~isequal(idx, si(:, 1:5)), error('neighbours differ from the dense sort'); end
assert_close(d2, s(:, 1:5), 1e-12, 'distances');
idx1 = kp_knn(x, y, 5);
if ~isequal(idx1, idx), error('one-output kp_knn differs'); end
if min(idx(:)) < 1 || max(idx(:)) > 300, error('indices are not 1-based row numbers'); end
end

function knn_single()
rand('seed', 8); %#ok<RAND>
x = single(rand(40, 3)); y = single(rand(300, 3));
[idx, d2] = kp_knn(x, y, 3);
if ~isa(idx, 'double') || ~isa(d2, 'single'), error('classes %s, %s', class(idx), class(d2)); end
D = sqdist(x, y);
rows = repmat((1:40)', 1, 3);
assert_close(D(sub2ind(size(D), rows, idx)), double(d2), 1e-5, 'distances at the indices');
end

function threads()
rand('seed', 9); %#ok<RAND>
x = single(rand(3000, 3)); y = single(rand(4000, 3)); b = single(rand(4000, 1));
old = kp_threads(1);
a1 = kp_kernel_product(x, y, b, 'gaussian', 0.2);
kp_threads(2);
a2 = kp_kernel_product(x, y, b, 'gaussian', 0.2);
kp_threads(3);
a3 = kp_kernel_product(x, y, b, 'gaussian', 0.2);
if kp_threads(old) ~= 3, error('kp_threads did not return the previous setting'); end
if ~isequal(a1, a2) || ~isequal(a1, a3), error('results depend on the thread count'); end
end

function full_text()
rand('seed', 10); %#ok<RAND>
x = rand(30, 3); y = rand(40, 3); b = rand(40, 1);
f = kp_genred('Sum_Reduction(Exp(-SqDist(x,y))*b, 1)', {'x = Vi(3)', 'y = Vj(3)', 'b = Vj(1)'});
assert_close(f(x, y, b), exp(-sqdist(x, y)) * b, 1e-12, 'full text');
g = kp_genred('Sum_Reduction(Exp(-SqDist(Vi(0,3),Vj(1,3)))*Vj(2,1), 1)');
assert_close(g(x, y, b), exp(-sqdist(x, y)) * b, 1e-12, 'no aliases');
end

function row_vector()
% a 1 x M row for a dimension-1 variable is M points
rand('seed', 11); %#ok<RAND>
x = rand(30, 3); y = rand(40, 3); b = rand(40, 1);
want = exp(-sqdist(x, y)) * b;
assert_close(kp_kernel_product(x, y, b', 'gaussian', 1), want, 1e-12, 'row b');
end

function column_slices()
% arguments of any size work from the strided view (1, N): big matrices,
% several columns, results equal to packed copies
rand('seed', 12); %#ok<RAND>
x = rand(257, 5); y = rand(301, 5); b = rand(301, 4);
f = kp_genred('Exp(-SqDist(x,y))*b', {'x = Vi(5)', 'y = Vj(5)', 'b = Vj(4)'}, 'Sum', 1);
assert_close(f(x, y, b), exp(-sqdist(x, y)) * b, 1e-12, 'D = 5, E = 4');
end

function cleared()
rand('seed', 13); %#ok<RAND>
x = rand(30, 3); y = rand(40, 3); b = rand(40, 1);
f = kp_genred('Exp(-SqDist(x,y))*b', {'x = Vi(3)', 'y = Vj(3)', 'b = Vj(1)'}, 'Sum', 1);
a = f(x, y, b);
gx = kp_grad(f, 'x');
ga = gx(x, y, b, ones(30, 1));
kp_mex('clear');
clear kp_mex
if ~isequal(f(x, y, b), a), error('the handle changed after clear'); end
if ~isequal(gx(x, y, b, ones(30, 1)), ga), error('the gradient changed after clear'); end
end

function info()
f = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, 'KMin_ArgKMin', 0, 4);
s = kp_info(f);
if s.nargs ~= 2 || ~strcmp(s.categories, 'ij') || ~isequal(s.dims, [3 3]) || s.axis ~= 0 || ...
   s.out_dim ~= 4 || s.out_index_dim ~= 4 || isempty(strfind(s.formula, 'KMin_ArgKMin_Reduction'))
  disp(s);
  error('unexpected info');
end
end

function fewer_outputs()
% [v] = f(...) of a two-output reduction gives the values only (the gateway
% must not write the indices past the outputs asked for; valgrind run:
% KP_OCTAVE_VALGRIND=1 scripts/test_octave.sh)
rand('seed', 15); %#ok<RAND>
x = rand(20, 3); y = rand(30, 3);
for red = {'Min_ArgMin', 'Max_ArgMax'}
  f = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, red{1}, 1);
  v = f(x, y);
  [v2, i2] = f(x, y);
  if ~isequal(v, v2) || ~isequal(size(i2), [20 1]), error('%s: one output differs from two', red{1}); end
end
f = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, 'KMin_ArgKMin', 1, 3);
f(x, y);   % no output asked for: ans gets the values
if ~isequal(size(ans), [20 3]), error('ans of KMin_ArgKMin is %s', mat2str(size(ans))); end %#ok<NOANS>
end
