function D = sqdist(x, y)
% Dense N x M matrix of squared distances |x_i - y_j|^2 (float64), the reference.
x = double(x);
y = double(y);
D = zeros(size(x, 1), size(y, 1));
for c = 1:size(x, 2)
  D = D + (x(:, c) - y(:, c)').^2;
end
end
