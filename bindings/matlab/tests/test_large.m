function cases = test_large()
% N = M = 10^5 in O(N) memory (the dense kernel matrix would take 80 GB in
% double), and inputs read in place (no copy of the arrays passed).
cases = {
  'gaussian_1e5_x_1e5_float32', @large_gaussian
  'inputs_not_copied', @no_copy
};
end

function large_gaussian()
rand('seed', 14); %#ok<RAND>
N = 1e5; M = 1e5;
x = single(rand(N, 3)); y = single(rand(M, 3)); b = single(rand(M, 1));
f = kp_genred('Exp(-SqDist(x,y)*g)*b', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'b = Vj(1)'}, 'Sum', 1);
[rss, peak0] = mem_kb(true);
t0 = tic;
a = f(x, y, 4, b);
t = toc(t0);
[~, peak1] = mem_kb();
fprintf('       N = M = 1e5: %.1f s, %.2e pairs/s, peak %.1f MB above the memory in use before (dense: 40 GB in single)\n', ...
        t, N * M / t, (peak1 - rss) / 1024);
if peak1 > max(peak0, rss + 64 * 1024)
  error('the peak rose %.0f MB above the memory in use: not O(N)', (peak1 - rss) / 1024);
end
rows = 1:5000:N;   % 20 rows against the dense float64 computation
want = exp(-4 * sqdist(x(rows, :), y)) * double(b);
assert_close(a(rows), want, 2e-6, 'sampled rows');
if ~all(isfinite(a)), error('non-finite results'); end
end

function no_copy()
% a 192 MB input: a copy would lift the peak 192 MB above the memory in use
x = rand(8e6, 3); y = rand(4, 3);
f = kp_genred('SqDist(x,y)', {'x = Vi(3)', 'y = Vj(3)'}, 'Min', 0);   % one value per y
[rss, peak0] = mem_kb(true);
v = f(x, y);
[~, peak1] = mem_kb();
fprintf('       8e6 x 3 double input: peak %.0f MB above the memory in use before the call\n', (peak1 - rss) / 1024);
if peak1 > max(peak0, rss + 48 * 1024)
  error('the peak rose %.0f MB above the memory in use for a 192 MB input: the input was copied', (peak1 - rss) / 1024);
end
want = zeros(4, 1);
for j = 1:4
  want(j) = min(sum((x - y(j, :)).^2, 2));
end
assert_close(v, want, 1e-12, 'Min over 8e6 points');
end

function [rss, peak] = mem_kb(reset)
% Memory in use and peak (VmRSS, VmHWM in kB; NaN without /proc). reset: first
% restart the peak from the memory in use (writing 5 to /proc/self/clear_refs),
% so that an earlier peak cannot hide this one.
if nargin > 0 && reset
  fid = fopen('/proc/self/clear_refs', 'w');
  if fid >= 0, fprintf(fid, '5'); fclose(fid); end
end
rss = NaN; peak = NaN;
if exist('/proc/self/status', 'file')
  s = fileread('/proc/self/status');
  rss = str2double(regexp(s, 'VmRSS:\s*(\d+)', 'tokens', 'once'));
  peak = str2double(regexp(s, 'VmHWM:\s*(\d+)', 'tokens', 'once'));
end
end
