function acc = knn_classifier(ntrain, ntest, K)
%KNN_CLASSIFIER  Example: a K-nearest-neighbours classifier with libkp.
%   ACC = KNN_CLASSIFIER(NTRAIN, NTEST, K) labels NTEST points of a noisy
%   2-D spiral with three arms by the majority vote of their K nearest
%   neighbours among NTRAIN labelled points (defaults 50000, 10000, 10) and
%   returns the accuracy. kp_knn finds the neighbours without the
%   NTEST x NTRAIN distance matrix; its indices are 1-based, so labels(idx)
%   works directly. The result is checked against a dense search on 200
%   test points.
%
%   From a shell:
%     octave-cli --eval "addpath bindings/matlab bindings/matlab/examples; knn_classifier"
if nargin < 1, ntrain = 5e4; end
if nargin < 2, ntest = 1e4; end
if nargin < 3, K = 10; end
[xtrain, ltrain] = spiral(ntrain);
[xtest, ltest] = spiral(ntest);

t0 = tic;
idx = kp_knn(xtest, xtrain, K);           % ntest x K, 1-based rows of xtrain
pred = mode(ltrain(idx), 2);              % majority vote (ties: smallest label)
t = toc(t0);
acc = mean(pred == ltest);
fprintf('%d-NN on %d test / %d training points: %.3f s, accuracy %.1f%%\n', K, ntest, ntrain, t, 100 * acc);

% the dense search users would otherwise write, on 200 test points
s = 1:200;
D = sum(xtest(s, :).^2, 2) + sum(xtrain.^2, 2)' - 2 * xtest(s, :) * xtrain';
[~, order] = sort(D, 2);
fprintf('neighbours equal to the dense search on 200 points: %s\n', mat2str(isequal(order(:, 1:K), idx(s, :))));
end

function [x, label] = spiral(n)
% n points on three noisy spiral arms, labels 1..3
label = randi(3, n, 1);
r = rand(n, 1);
theta = 4 * r + 2 * pi * label / 3;
x = [r .* cos(theta), r .* sin(theta)] + 0.04 * randn(n, 2);
end
