#!/usr/bin/env Rscript
# bench_r.R: the Gaussian kernel product a_i = sum_j exp(-g |x_i - y_j|^2) b_j
# (3D, b of dimension 1) from R with rkp, against
#   - the C call: kp_plan_exec on row-major C buffers made once, timed inside
#     the same R process (rkp:::.c_exec_time): the binding's overhead in %;
#   - the dense R code users would otherwise write (outer, exp, %*%): time and
#     peak memory; skipped, with the memory it would need, where it cannot fit.
# One run measures everything; prints the machine and a Markdown table.
#
# usage: Rscript bench/r/bench_r.R [--quick] [--reps R] [--reps-large R] [--dense-limit GB]
#   --quick          N = M in {1e3, 1e4} (seconds) instead of {1e4, 1e5} (minutes)
#   --reps R         repetitions of each timing for N <= 1e4 (best kept; default 5)
#   --reps-large R   repetitions for N > 1e4 (default 1)
#   --dense-limit G  run the dense code only if its N x M matrices (3 of them) fit in G GB (default 8)
args <- commandArgs(trailingOnly = TRUE)
opt <- list(quick = FALSE, reps = 5L, reps_large = 1L, dense_limit = 8)
while (length(args)) {
  a <- args[1]
  if (a %in% c("-h", "--help")) {
    src <- readLines(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)))
    head_end <- which(!grepl("^#", src))[1] - 1L
    cat(sub("^# ?", "", src[2:head_end]), sep = "\n")
    quit(status = 0)
  } else if (a == "--quick") { opt$quick <- TRUE; args <- args[-1]
  } else if (a == "--reps") { opt$reps <- as.integer(args[2]); args <- args[-(1:2)]
  } else if (a == "--reps-large") { opt$reps_large <- as.integer(args[2]); args <- args[-(1:2)]
  } else if (a == "--dense-limit") { opt$dense_limit <- as.numeric(args[2]); args <- args[-(1:2)]
  } else stop("bench_r.R: unknown option ", a)
}
suppressPackageStartupMessages(library(rkp))

cpu <- tryCatch(sub(".*: ", "", grep("model name", readLines("/proc/cpuinfo"), value = TRUE)[1]),
                error = function(e) "unknown")
load <- function() tryCatch(scan("/proc/loadavg", what = "", n = 1, quiet = TRUE), error = function(e) "?")
cat(sprintf("machine: %s, %d cores; %s; rkp %s; load average at start %s\n",
            cpu, parallel::detectCores(), R.version.string, packageVersion("rkp"), load()))

peak_rss_mb <- function() {
  st <- tryCatch(readLines("/proc/self/status"), error = function(e) character())
  v <- grep("^VmHWM", st, value = TRUE)
  if (!length(v)) return(NA_real_)
  as.numeric(sub("[^0-9]*([0-9]+).*", "\\1", v)) / 1024
}
# Peak R heap (MB) while running expr, with its value and elapsed time.
measured <- function(expr) {
  invisible(gc(reset = TRUE))
  t <- system.time(val <- force(expr))[["elapsed"]]
  g <- gc()
  list(value = val, time = t, mb = sum(g[, 6]) - sum(g[, 2]))
}

op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)",
                   c("x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"))

# The binding's fixed cost per call, where the kernel itself is negligible
# (N = M = 100): median of many interleaved calls, float64.
per_call <- function(reps = 400L) {
  set.seed(2)
  inp <- list(matrix(runif(300), 100), matrix(runif(300), 100), 8, matrix(runif(100), 100))
  t_r <- t_c <- numeric(reps)
  for (r in seq_len(reps)) {
    t0 <- proc.time()[["elapsed"]]
    for (k in 1:10) op(inp)
    t_r[r] <- (proc.time()[["elapsed"]] - t0) / 10
    t_c[r] <- rkp:::.c_exec_time(op, inp, 1L)
  }
  c(r = median(t_r), c = median(t_c))
}
pc <- per_call()
cat(sprintf("per call at N = M = 100 (median, float64): R %.1f us, C %.1f us: the binding adds %.1f us per call\n",
            1e6 * pc[["r"]], 1e6 * pc[["c"]], 1e6 * (pc[["r"]] - pc[["c"]])))
sizes <- if (opt$quick) c(1e3, 1e4) else c(1e4, 1e5)
rows <- list()
for (N in sizes) {
  set.seed(1)
  x <- matrix(runif(N * 3), N); y <- matrix(runif(N * 3), N); b <- matrix(runif(N), N); g <- 8
  input <- list(x, y, g, b)
  reps <- if (N <= 1e4) opt$reps else opt$reps_large
  res <- list()
  for (prec in c("float32", "float64")) {
    old <- rkp_options(precision = prec)
    t_r <- t_c <- Inf
    rss0 <- peak_rss_mb()
    for (r in seq_len(reps)) {  # interleaved, best of each: both see the same machine
      t_r <- min(t_r, system.time(out <- op(input))[["elapsed"]])
      t_c <- min(t_c, rkp:::.c_exec_time(op, input, 1L))
    }
    m <- measured(op(input))
    do.call(rkp_options, old)
    res[[prec]] <- list(t_r = t_r, t_c = t_c, out = out, r_mb = m$mb, rss = peak_rss_mb() - rss0)
    cat(sprintf("N = M = %g, %s: R %.4f s, C %.4f s, overhead %+.1f%%\n",
                N, prec, t_r, t_c, 100 * (t_r - t_c) / t_c))
  }
  dense_gb <- 3 * N * N * 8 / 1e9
  if (dense_gb <= opt$dense_limit) {
    d <- measured({
      D2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
      exp(-g * D2) %*% b
    })
    err <- max(abs(d$value - res$float64$out)) / max(abs(d$value))
    cat(sprintf("N = M = %g, dense R: %.3f s, %.0f MB peak R heap; rkp float64 rel. diff %.1e\n",
                N, d$time, d$mb, err))
    stopifnot(err < 1e-10)
    dense <- sprintf("%.3f s, %.0f MB", d$time, d$mb)
    speedup <- sprintf("%.0fx / %.0fx", d$time / res$float64$t_r, d$time / res$float32$t_r)
  } else {
    dense <- sprintf("does not fit: %.0f GB for one N x M double matrix", N * N * 8 / 1e9)
    speedup <- "-"
  }
  rows[[length(rows) + 1]] <- sprintf(
    "| %g | %.4f | %.4f | %+.1f%% | %.4f | %.4f | %+.1f%% | %.1f MB | %s | %s |",
    N, res$float64$t_r, res$float64$t_c, 100 * (res$float64$t_r - res$float64$t_c) / res$float64$t_c,
    res$float32$t_r, res$float32$t_c, 100 * (res$float32$t_r - res$float32$t_c) / res$float32$t_c,
    res$float64$r_mb, dense, speedup)
}
cat(sprintf("load average at end %s\n\n", load()))
cat("| N = M | R f64 (s) | C f64 (s) | overhead f64 | R f32 (s) | C f32 (s) | overhead f32 | rkp R heap (f64) | dense R (time, peak heap) | dense / rkp (f64 / f32) |\n")
cat("|---|---|---|---|---|---|---|---|---|---|\n")
cat(unlist(rows), sep = "\n")
cat("\n")
