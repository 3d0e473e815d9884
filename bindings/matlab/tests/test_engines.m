function cases = test_engines()
% kp_engine: the OpenCL engine (PoCL on machines without a GPU) and the CUDA
% engine agree with the CPU engine where they can run; where they cannot, the
% error is libkp:unsupported with libkp's reason and the engine is unchanged.
cases = {
  'opencl_matches_cpu', @() engine_case('opencl')
  'cuda_matches_cpu_or_unsupported', @() engine_case('cuda')
  'unknown_engine', @() expect_error(@() kp_engine('tpu'), 'libkp:argument', 'unknown engine')
};
end

function engine_case(name)
rand('seed', 30); randn('seed', 30); %#ok<RAND>
x = rand(300, 3); y = rand(400, 3); b = randn(400, 2);
f = kp_genred('Exp(-SqDist(x,y)*g)*b', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'b = Vj(2)'}, 'Sum', 1);
gx = kp_grad(f, 'x');
E = randn(300, 2);
kp_engine('cpu');
a = f(x, y, 5, b); as = f(single(x), single(y), 5, single(b)); g = gx(x, y, 5, b, E);
restore = onCleanup(@() kp_engine('cpu'));
try
  kp_engine(name);
catch err
  if ~strcmp(err.identifier, 'libkp:unsupported'), rethrow(err); end
  if ~strcmp(kp_engine(), 'cpu'), error('a failed kp_engine changed the engine'); end
  fprintf('       %s engine not available here: %s\n', name, err.message);
  return;
end
if ~strcmp(kp_engine(), name), error('kp_engine() says %s', kp_engine()); end
assert_close(f(x, y, 5, b), a, 1e-13, [name ' float64']);
assert_close(f(single(x), single(y), 5, single(b)), as, 1e-5, [name ' float32']);
assert_close(gx(x, y, 5, b, E), g, 1e-12, [name ' gradient']);
end
