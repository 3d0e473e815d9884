function cases = test_errors()
% Bad inputs raise Octave/MATLAB errors with a libkp:* identifier and libkp's
% message, never a crash or a wrong answer; NaN and Inf follow IEEE rules.
cases = {
  'malformed_formula', @() expect_error(@() kp_genred('Exq(x)', {'x = Vi(1)'}, 'Sum', 1), 'libkp:formula', 'unknown function ''Exq''')
  'unknown_reduction', @() expect_error(@() kp_genred('x', {'x = Vi(1)'}, 'Summ', 1), 'libkp:formula', 'unknown reduction')
  'dimension_mismatch_in_formula', @() expect_error(@() kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(2)'}, 'Sum', 1), 'libkp:shape', 'equal dimension')
  'bad_axis', @() expect_error(@() kp_genred('x', {'x = Vi(1)'}, 'Sum', 2), 'libkp:argument')
  'bad_aliases', @() expect_error(@() kp_genred('x', {1}, 'Sum', 1), 'libkp:argument')
  'bad_K', @() expect_error(@() kp_genred('x', {'x = Vi(1)'}, 'KMin', 1, 0), 'libkp:argument')
  'wrong_point_dimension', @() expect_error(@() call_gauss(rand(4, 2), rand(5, 3), 1, rand(5, 1)), 'libkp:shape', 'last dimension is 2, expected 3')
  'inconsistent_point_counts', @() expect_error(@() call_gauss(rand(4, 3), rand(6, 3), 1, rand(5, 1)), 'libkp:shape', '5 rows')
  'parameter_size', @() expect_error(@() call_gauss(rand(4, 3), rand(5, 3), [1 2], rand(5, 1)), 'libkp:shape')
  'batch_extents_differ', @() expect_error(@() call_gauss(rand(4, 3, 2), rand(5, 3, 3), 1, rand(5, 1)), 'libkp:shape', 'batch dimension 0 has extent')
  'too_many_batch_dimensions', @() expect_error(@() call_gauss(rand(4, 3, 1, 1, 1, 1, 1, 1, 2), rand(5, 3), 1, rand(5, 1)), 'libkp:shape', 'at most 6 batch dimensions')
  'too_few_inputs', @() expect_error(@() call_gauss(rand(4, 3), rand(5, 3), 1), 'libkp:argument', 'takes 4 inputs')
  'too_many_outputs', @too_many_outputs
  'complex', @() expect_error(@() call_gauss(rand(4, 3), rand(5, 3), 1, rand(5, 1) + 1i), 'libkp:dtype', 'complex')
  'int32', @() expect_error(@() call_gauss(int32(ones(4, 3)), rand(5, 3), 1, rand(5, 1)), 'libkp:dtype', 'int32')
  'int64', @() expect_error(@() call_gauss(rand(4, 3), int64(ones(5, 3)), 1, rand(5, 1)), 'libkp:dtype', 'int64')
  'logical', @() expect_error(@() call_gauss(rand(4, 3), rand(5, 3), true, rand(5, 1)), 'libkp:dtype', 'logical')
  'char', @() expect_error(@() call_gauss(rand(4, 3), rand(5, 3), 'a', rand(5, 1)), 'libkp:dtype', 'char')
  'cell', @() expect_error(@() call_gauss(rand(4, 3), rand(5, 3), 1, {1}), 'libkp:dtype', 'cell')
  'sparse', @() expect_error(@() call_gauss(rand(4, 3), rand(5, 3), 1, sparse(rand(5, 1))), 'libkp:dtype', 'sparse')
  'mixed_classes', @() expect_error(@() call_gauss(rand(4, 3), single(rand(5, 3)), 1, rand(5, 1)), 'libkp:dtype', 'convert them to one class')
  'K_larger_than_M', @() expect_error(@() knn_call(9), 'libkp:argument', 'K = 9 is larger than the 5 points')
  'grad_not_a_handle', @() expect_error(@() kp_grad(@sin, 1), 'libkp:argument')
  'grad_unknown_name', @() expect_error(@() kp_grad(gauss(), 'zz'), 'libkp:argument', 'zz')
  'grad_bad_position', @() expect_error(@() kp_grad(gauss(), 7), 'libkp:argument')
  'grad_of_lse_grad', @grad_of_lse_grad
  'threads_bad', @() expect_error(@() kp_threads(-1), 'libkp:argument')
  'nan_propagates_in_sums', @nan_sum
  'nan_selected_by_min', @nan_min
  'inf_inputs', @inf_inputs
  'empty_inputs', @empty_inputs
  'still_works_after_errors', @after_errors
  'no_memory_kept_by_errors', @no_leak
};
end

function f = gauss()
f = kp_genred('Exp(-SqDist(x,y)*g)*b', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'b = Vj(1)'}, 'Sum', 1);
end

function knn_call(K)
f = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, 'KMin', 1, K);
f(rand(4, 3), rand(5, 3));
end

function too_many_outputs()
f = gauss();
expect_error(@() two_outputs(f), 'libkp:argument', '1 output');
end

function [p, q] = two_outputs(f)
[p, q] = f(rand(4, 3), rand(5, 3), 1, rand(5, 1));
end

function grad_of_lse_grad()
l = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, 'LogSumExp', 1);
expect_error(@() kp_grad(kp_grad(l, 1), 1), 'libkp:unsupported');
end

function nan_sum()
x = rand(4, 3); y = rand(5, 3); b = rand(5, 1);
x(2, 1) = NaN;
a = call_gauss(x, y, 1, b);
want = exp(-sqdist(x, y)) * b;
assert_close(a, want, 1e-12, 'NaN row');
end

function nan_min()
y = rand(5, 3); y(3, 2) = NaN;
f = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, 'Min_ArgMin', 1);
[v, j] = f(rand(4, 3), y);
if ~all(isnan(v)) || ~isequal(j, [3; 3; 3; 3])
  error('NaN is not selected by Min_ArgMin: %s / %s', mat2str(v'), mat2str(j'));
end
end

function inf_inputs()
x = rand(4, 3); y = rand(5, 3); y(2, 1) = Inf;
a = call_gauss(x, y, 1, ones(5, 1));
D = sqdist(x, y);
assert_close(a, sum(exp(-D(:, [1 3 4 5])), 2), 1e-12, 'Inf point has zero weight');
end

function empty_inputs()
a = call_gauss(zeros(0, 3), rand(5, 3), 1, rand(5, 1));
if ~isequal(size(a), [0 1]), error('N = 0 gave %s', mat2str(size(a))); end
a = call_gauss(rand(4, 3), zeros(0, 3), 1, zeros(0, 1));
if ~isequal(a, zeros(4, 1)), error('M = 0 sum is not zero'); end
end

function after_errors()
f = gauss();
for k = 1:50
  try, f(rand(4, 2), rand(5, 3), 1, rand(5, 1)); catch, end %#ok<NOCOM>
  try, f(rand(4, 3), rand(5, 3), 1, int8(ones(5, 1))); catch, end %#ok<NOCOM>
end
x = rand(4, 3); y = rand(5, 3); b = rand(5, 1);
assert_close(f(x, y, 1, b), exp(-sqdist(x, y)) * b, 1e-12, 'after errors');
end

function a = call_gauss(varargin)
f = gauss();
a = f(varargin{:});
end

function no_leak()
% 30000 failing calls (libkp's errors, the gateway's, a gradient's forward)
% must not keep memory: a leak of 100 bytes per error would show as 3 MB.
if ~exist('/proc/self/status', 'file') || strcmp(getenv('KP_OCTAVE_VALGRIND'), '1')
  return;   % no /proc, or under valgrind (which checks memory itself, slowly)
end
f = gauss();
l = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, 'LogSumExp', 1);
gl = kp_grad(l, 2);
x = rand(50, 3); y = rand(60, 3); y2 = y(:, 1:2); b = rand(60, 1); bi = int8(b); e = rand(51, 1);
calls = {@() f(x, y2, 1, b), @() f(x, y, 1, bi), @() gl(x, y, e)};
for k = 1:300, for c = 1:3, try, calls{c}(); catch, end, end, end %#ok<NOCOM>
r0 = rss_kb();
for k = 1:10000, for c = 1:3, try, calls{c}(); catch, end, end, end %#ok<NOCOM>
grown = rss_kb() - r0;
if grown > 1536
  error('memory in use grew by %.1f MB over 30000 failing calls', grown / 1024);
end
end

function kb = rss_kb()
kb = str2double(regexp(fileread('/proc/self/status'), 'VmRSS:\s*(\d+)', 'tokens', 'once'));
end
