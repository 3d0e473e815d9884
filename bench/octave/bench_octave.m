function bench_octave(cbin, sizes)
%BENCH_OCTAVE  The Gaussian kernel product from Octave/MATLAB: libkp binding vs the C call vs dense code.
%   BENCH_OCTAVE(CBIN, SIZES) times a_i = sum_j exp(-|x_i - y_j|^2 g) b_j
%   (D = 3) for N = M in SIZES (default [1e4 1e5]), in double and single:
%     - the binding: f(x, y, g, b) from kp_genred, timed with tic/toc;
%     - inside it: kp_plan_exec alone (kp_mex('exec_seconds'), same call),
%       so binding overhead = (call - exec) / exec;
%     - the C call: the program CBIN (c_gauss.c) on packed row-major arrays
%       and on column-major ones (the gateway's layout), same libkp, same run;
%     - the dense Octave code users would write (D = |x|^2 + |y|^2' - 2xy',
%       exp(-g*D)*b): time and peak memory where it fits; where the N x N matrix
%       cannot fit in RAM, the time of 2000 rows in blocks of 250, scaled to N.
%   Plus the per-call overhead at N = M = 100 with the formula cache and
%   with a parse + plan per call. Prints Markdown tables; numbers are best of
%   5 calls at 1e4 and single calls at 1e5. Peak memory: growth of VmHWM above
%   the memory in use before the call (Linux).
%   Run by bench/octave/bench_octave.sh, which builds CBIN and the MEX file.
if nargin < 2, sizes = [1e4 1e5]; end
here = fileparts(mfilename('fullpath'));
addpath(fullfile(here, '..', '..', 'bindings', 'matlab'));
ram_gb = mem_total_gb();
fprintf('threads: libkp default (all cores), %d cores; RAM %.0f GB; load average %s\n', ...
        nproc_count(), ram_gb, strtrim(fileread_safe('/proc/loadavg')));
f = kp_genred('Exp(-SqDist(x,y)*g)*b', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'b = Vj(1)'}, 'Sum', 1);
g = 4;
fprintf('\n| N = M | class | Octave call | kp_plan_exec inside | binding overhead | C call, row-major | C call, col-major | Octave vs C row-major | libkp peak memory | dense Octave | dense peak memory | libkp speed-up |\n');
fprintf('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n');
for N = sizes
  for cls = {'double', 'single'}
    c = cls{1};
    rand('seed', 1); %#ok<RAND>
    x = cast(rand(N, 3), c); y = cast(rand(N, 3), c); b = cast(rand(N, 1), c);
    reps = 5;
    if N >= 1e5, reps = 1; end
    f(x(1:100, :), y(1:100, :), g, b(1:100));   % plan of this class made outside the timing
    best = Inf; exec = Inf;
    [rss, ~] = mem_kb(true);
    for r = 1:reps
      t0 = tic;
      a = f(x, y, g, b);
      t = toc(t0);
      if t < best, best = t; exec = kp_mex('exec_seconds'); end
    end
    [~, peak] = mem_kb();
    kp_peak = max(0, peak - rss) / 1024;
    dt = 'f64';
    if strcmp(c, 'single'), dt = 'f32'; end
    [st, out] = system(sprintf('%s %d %s %d', cbin, N, dt, reps));
    tc = sscanf(out, 'rowmajor %f colmajor %f');
    if st ~= 0 || numel(tc) ~= 2, error('c_gauss failed: %s', out); end
    [tdense, dpeak, note] = dense(x, y, g, b, a, ram_gb);
    fprintf('| %g | %s | %.4f s | %.4f s | %+.1f%% | %.4f s | %.4f s | %+.1f%% | %.1f MB | %s | %s | %s |\n', ...
            N, c, best, exec, 100 * (best - exec) / exec, tc(1), tc(2), 100 * (best - tc(1)) / tc(1), ...
            kp_peak, tdense, dpeak, speedup(tdense, best, note));
  end
end
call_overhead(f, g);
end

function [t, peak, note] = dense(x, y, g, b, a, ram_gb)
% The dense computation, or its extrapolation from 2000 rows when N x N does not fit.
N = size(x, 1); M = size(y, 1);
bytes = N * M * 8;
if strcmp(class(x), 'single'), bytes = bytes / 2; end
note = '';
if 3 * bytes < 0.5 * ram_gb * 2^30   % the formula makes ~3 N x M temporaries
  [rss, ~] = mem_kb(true);
  t0 = tic;
  D = sum(x.^2, 2) + sum(y.^2, 2)' - 2 * (x * y');
  ad = exp(-g * D) * b;
  tt = toc(t0);
  [~, pk] = mem_kb();
  clear D;
  rel = max(abs(double(ad) - double(a))) / max(abs(double(ad)));
  t = sprintf('%.3f s (rel. diff %.0e)', tt, rel);
  peak = sprintf('%.0f MB', max(0, pk - rss) / 1024);
  note = tt;
else
  rows = 2000; blk = 250;
  t0 = tic;
  for i0 = 1:blk:rows
    i = i0:min(rows, i0 + blk - 1);
    D = sum(x(i, :).^2, 2) + sum(y.^2, 2)' - 2 * (x(i, :) * y');
    ad = exp(-g * D) * b; %#ok<NASGU>
  end
  tt = toc(t0) * N / rows;
  t = sprintf('cannot fit (N x M: %.0f GB); in blocks: ~%.0f s (extrapolated from %d rows)', bytes / 2^30, tt, rows);
  peak = sprintf('%.0f GB needed', 3 * bytes / 2^30);
  note = tt;
end
end

function s = speedup(tdense, tkp, note)
if isnumeric(note) && ~isempty(note)
  s = sprintf('%.1fx', note / tkp);
else
  s = '-';
end
end

function call_overhead(f, g)
% Cost per call at N = M = 100 (pairs cost ~nothing): cached formula vs
% a parse + plan per call.
rand('seed', 2); %#ok<RAND>
x = rand(100, 3); y = rand(100, 3); b = rand(100, 1);
n = 2000;
t0 = tic; ex = 0;
for k = 1:n
  f(x, y, g, b);
  ex = ex + kp_mex('exec_seconds');
end
tc = toc(t0) / n;
ex = ex / n;
t0 = tic;
for k = 1:n
  kp_kernel_product(x, y, b, 'gaussian', 0.5);
end
tk = toc(t0) / n;
m = 200;
t0 = tic;
for k = 1:m
  kp_mex('clear');   % the same handle: parsed and planned again on the call
  f(x, y, g, b);
end
tp = toc(t0) / m;
t0 = tic;
for k = 1:m
  h = kp_genred('Exp(-SqDist(x,y)*g)*b', {'x = Vi(3)', 'y = Vj(3)', 'g = Pm(1)', 'b = Vj(1)'}, 'Sum', 1);
end
tg = toc(t0) / m;
fprintf('\nPer call at N = M = 100 (double; kp_plan_exec itself: %.1f us):\n\n', 1e6 * ex);
fprintf('| call | time per call |\n|---|---:|\n');
fprintf('| handle from kp_genred, formula cached | %.1f us |\n', 1e6 * tc);
fprintf('| kp_kernel_product (its handle cached by kernel and shape) | %.1f us |\n', 1e6 * tk);
fprintf('| parse + plan + call (cache emptied each time) | %.1f us |\n', 1e6 * tp);
fprintf('| kp_genred alone (builds a handle; formula cached) | %.1f us |\n', 1e6 * tg);
end

function [rss, peak] = mem_kb(reset)
% Memory in use and peak (kB); reset: first restart the peak from the memory
% in use (Linux: writing 5 to /proc/self/clear_refs), so that earlier peaks
% (the dense runs) do not hide this one.
if nargin > 0 && reset
  fid = fopen('/proc/self/clear_refs', 'w');
  if fid >= 0, fprintf(fid, '5'); fclose(fid); end
end
rss = 0; peak = 0;
s = fileread_safe('/proc/self/status');
if ~isempty(s)
  rss = str2double(regexp(s, 'VmRSS:\s*(\d+)', 'tokens', 'once'));
  peak = str2double(regexp(s, 'VmHWM:\s*(\d+)', 'tokens', 'once'));
end
end

function gb = mem_total_gb()
s = fileread_safe('/proc/meminfo');
gb = 16;
if ~isempty(s), gb = str2double(regexp(s, 'MemTotal:\s*(\d+)', 'tokens', 'once')) / 2^20; end
end

function n = nproc_count()
n = nproc();
end

function s = fileread_safe(p)
s = '';
if exist(p, 'file'), s = fileread(p); end
end
