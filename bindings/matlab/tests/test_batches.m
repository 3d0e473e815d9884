function cases = test_batches()
% Batch dimensions: an N x D x B1 x B2 array is B1*B2 point clouds; every
% batch equals the unbatched call on its slices, inputs with extent 1 or no
% batch dimensions are shared (broadcast), and gradients of shared inputs are
% summed over the batches they were shared by.
cases = {
  'sum_per_batch', @sum_per_batch
  'broadcast_inputs_and_params', @broadcast
  'argkmin_per_batch', @argkmin
  'gradients_sum_over_broadcast', @gradients
  'hidden_forward_results_batched', @hidden
};
end

function f = gauss()
f = kp_genred('Exp(-SqDist(x,y)*g)*b', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'b = Vj(2)'}, 'Sum', 1);
end

function sum_per_batch()
rand('seed', 40); %#ok<RAND>
f = gauss();
x = rand(7, 3, 2, 3); y = rand(9, 3, 2, 3); b = rand(9, 2, 2, 3);
for cls = {'double', 'single'}
  c = cls{1};
  a = f(cast(x, c), cast(y, c), 2, cast(b, c));
  if ~isequal(size(a), [7 2 2 3]) || ~isa(a, c), error('size %s, class %s', mat2str(size(a)), class(a)); end
  for i = 1:2
    for j = 1:3
      want = exp(-2 * sqdist(x(:, :, i, j), y(:, :, i, j))) * b(:, :, i, j);
      assert_close(a(:, :, i, j), want, 1e-5, sprintf('%s batch (%d,%d)', c, i, j));
    end
  end
end
end

function broadcast()
rand('seed', 41); %#ok<RAND>
f = gauss();
x = rand(7, 3, 4); y = rand(9, 3); b = rand(9, 2, 1, 3); g = reshape(1:4, 1, 1, 4);
a = f(x, y, g, b);   % batch shape (4, 3): x over dim 3, b over dim 4, g over dim 3, y shared
if ~isequal(size(a), [7 2 4 3]), error('size %s', mat2str(size(a))); end
for i = 1:4
  for j = 1:3
    assert_close(a(:, :, i, j), exp(-i * sqdist(x(:, :, i), y)) * b(:, :, 1, j), 1e-12, sprintf('batch (%d,%d)', i, j));
  end
end
end

function argkmin()
rand('seed', 42); %#ok<RAND>
x = rand(20, 2, 3); y = rand(30, 2, 3);
f = kp_genred('SqDist(x,y)', {'x = Vi(2)', 'y = Vj(2)'}, 'ArgKMin', 1, 4);
idx = f(x, y);
for k = 1:3
  [~, si] = sort(sqdist(x(:, :, k), y(:, :, k)), 2);
  if ~isequal(idx(:, :, k), si(:, 1:4)), error('batch %d: indices differ', k); end
end
end

function gradients()
rand('seed', 43); randn('seed', 43); %#ok<RAND>
f = gauss();
x = rand(7, 3, 4); y = rand(9, 3); b = rand(9, 2, 4); E = randn(7, 2, 4);
for var = {'x', 'y', 'g', 'b'}
  g = kp_grad(f, var{1});
  G = g(x, y, 2, b, E);
  per = cell(1, 4);   % the unbatched gradients of each batch
  for k = 1:4
    per{k} = g(x(:, :, k), y, 2, b(:, :, k), E(:, :, k));
  end
  if any(strcmp(var{1}, {'y', 'g'}))   % shared by the 4 batches: the sum of their gradients
    assert_close(G, per{1} + per{2} + per{3} + per{4}, 1e-12, ['shared ' var{1}]);
  else                                 % batched: one gradient per batch
    for k = 1:4
      assert_close(G(:, :, k), per{k}, 1e-12, sprintf('%s batch %d', var{1}, k));
    end
  end
end
end

function hidden()
% gradients that compute forward results inside (LogSumExp output, KMin indices)
rand('seed', 44); randn('seed', 44); %#ok<RAND>
x = rand(7, 3, 3); y = rand(9, 3, 3);
l = kp_genred('-SqDist(x,y)*g', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)'}, 'LogSumExp', 1);
m = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, 'KMin', 1, 2);
gl = kp_grad(l, 'y'); gm = kp_grad(m, 'x');
El = randn(7, 1, 3); Em = randn(7, 2, 3);
Gl = gl(x, y, 2, El); Gm = gm(x, y, Em);
for k = 1:3
  assert_close(Gl(:, :, k), gl(x(:, :, k), y(:, :, k), 2, El(:, :, k)), 1e-12, sprintf('LogSumExp batch %d', k));
  assert_close(Gm(:, :, k), gm(x(:, :, k), y(:, :, k), Em(:, :, k)), 1e-12, sprintf('KMin batch %d', k));
end
end
