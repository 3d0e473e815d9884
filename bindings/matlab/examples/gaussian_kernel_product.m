function a = gaussian_kernel_product(N, sigma)
%GAUSSIAN_KERNEL_PRODUCT  Example: a_i = sum_j exp(-|x_i - y_j|^2 / sigma^2) b_j with libkp.
%   GAUSSIAN_KERNEL_PRODUCT(N, SIGMA) draws N points x_i and N points y_j
%   in the unit cube of R^3 (default N = 20000, SIGMA = 0.1), computes the
%   Gaussian kernel product in single precision without the N x N matrix,
%   prints the time, the throughput and the memory the dense matrix would
%   need, checks 10 rows against the dense computation in double, and takes
%   the gradient of sum(a) with respect to x (kp_grad).
%
%   From a shell:
%     octave-cli --eval "addpath bindings/matlab bindings/matlab/examples; gaussian_kernel_product(1e5)"
if nargin < 1, N = 2e4; end
if nargin < 2, sigma = 0.1; end
x = single(rand(N, 3)); y = single(rand(N, 3)); b = single(randn(N, 1));

% the one-call way
t0 = tic;
a = kp_kernel_product(x, y, b, 'gaussian', sigma);
t = toc(t0);
fprintf('N = M = %d: %.3f s, %.2e pairs/s; the dense N x N matrix would take %.1f GB in single\n', ...
        N, t, N^2 / t, 4 * N^2 / 2^30);

% the same with an explicit formula, and its gradient in x
f = kp_genred('Exp(-SqDist(x,y)*g)*b', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'b = Vj(1)'}, 'Sum', 1);
a2 = f(x, y, 1 / sigma^2, b);
gx = kp_grad(f, 'x');
dx = gx(x, y, 1 / sigma^2, b, ones(N, 1, 'single'));   % d sum(a) / dx, N x 3
fprintf('formula and kernel_product agree to %.1e; |d sum(a)/dx| = %.4g\n', ...
        max(abs(a - a2)) / max(abs(a)), norm(double(dx(:))));

% the dense computation users would otherwise write, on 10 rows
rows = round(linspace(1, N, 10));
D = sum(double(x(rows, :)).^2, 2) + sum(double(y).^2, 2)' - 2 * double(x(rows, :)) * double(y)';
ref = exp(-D / sigma^2) * double(b);
fprintf('relative error against dense float64 on 10 rows: %.1e\n', ...
        max(abs(double(a(rows)) - ref)) / max(abs(ref)));
end
