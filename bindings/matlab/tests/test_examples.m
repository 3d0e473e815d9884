function cases = test_examples()
% The examples run (small sizes) and give sensible results.
here = fileparts(mfilename('fullpath'));
addpath(fullfile(fileparts(here), 'examples'));
cases = {
  'gaussian_kernel_product', @gaussian
  'knn_classifier', @knn
};
end

function gaussian()
rand('seed', 20); randn('seed', 20); %#ok<RAND>
evalc('a = gaussian_kernel_product(3000, 0.2);');
if ~isequal(size(a), [3000 1]) || ~isa(a, 'single') || ~all(isfinite(a)), error('unexpected result'); end
end

function knn()
rand('seed', 21); randn('seed', 21); %#ok<RAND>
evalc('acc = knn_classifier(5000, 500, 5);');
if acc < 0.9, error('accuracy %.3f on the spiral, expected > 0.9', acc); end
end
