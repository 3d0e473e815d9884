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
# (N = M = 100): median over reps of the mean of `inner` calls, float64, one
# thread (waking threads on a busy machine costs more than the call).
per_call <- function(reps = 30L, inner = 200L) {
  old <- rkp_options(threads = 1)
  on.exit(do.call(rkp_options, old))
  set.seed(2)
  inp <- list(matrix(runif(300), 100), matrix(runif(300), 100), 8, matrix(runif(100), 100))
  op(inp)  # the plan is made on the first call
  t_r <- t_c <- numeric(reps)
  for (r in seq_len(reps)) {  # proc.time ticks in ms: time `inner` calls at once
    t0 <- proc.time()[["elapsed"]]
    for (k in seq_len(inner)) op(inp)
    t_r[r] <- (proc.time()[["elapsed"]] - t0) / inner
    t_c[r] <- mean(rkp:::.c_exec_time(op, inp, inner, col_major = TRUE))
  }
  c(r = median(t_r), c = median(t_c))
}
pc <- per_call()
cat(sprintf("per call at N = M = 100, float64, 1 thread (median of means): R %.1f us, C %.1f us: the binding adds %.1f us per call\n",
            1e6 * pc[["r"]], 1e6 * pc[["c"]], 1e6 * (pc[["r"]] - pc[["c"]])))
sizes <- if (opt$quick) c(1e3, 1e4) else c(1e4, 1e5)
rows <- character()
for (N in sizes) {
  set.seed(1)
  x <- matrix(runif(N * 3), N); y <- matrix(runif(N * 3), N); b <- matrix(runif(N), N); g <- 8
  input <- list(x, y, g, b)
  reps <- if (N <= 1e4) opt$reps else opt$reps_large
  res <- list()
  for (prec in c("float64", "float32")) {
    old <- rkp_options(precision = prec)
    t_r <- t_cc <- t_cr <- Inf
    out <- op(input)  # the plan of this dtype is made on the first call
    inner <- if (N <= 1e3) 100L else 1L  # proc.time ticks in ms
    for (r in seq_len(reps)) {  # interleaved, best of each: all see the same machine
      t_r <- min(t_r, system.time(for (k in seq_len(inner)) out <- op(input))[["elapsed"]] / inner)
      # the mean of `inner` calls, as for R: a fair best-of-reps comparison
      t_cc <- min(t_cc, mean(rkp:::.c_exec_time(op, input, inner, col_major = TRUE)))
      t_cr <- min(t_cr, mean(rkp:::.c_exec_time(op, input, inner, col_major = FALSE)))
    }
    m <- measured(op(input))
    do.call(rkp_options, old)
    res[[prec]] <- list(t_r = t_r, t_cc = t_cc, t_cr = t_cr, out = out, r_mb = m$mb)
    cat(sprintf("N = M = %g, %s: R %.4f s; C on R's column-major layout %.4f s (R overhead %+.1f%%); C on row-major %.4f s\n",
                N, prec, t_r, t_cc, 100 * (t_r - t_cc) / t_cc, t_cr))
  }
  dense_gb <- 3 * N * N * 8 / 1e9
  if (dense_gb <= opt$dense_limit) {
    d <- measured({
      D2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
      exp(-g * D2) %*% b
    })
    err <- max(abs(d$value - res$float64$out)) / max(abs(d$value))
    cat(sprintf("N = M = %g, dense R (float64): %.3f s, %.0f MB peak R heap; rkp float64 rel. diff %.1e\n",
                N, d$time, d$mb, err))
    stopifnot(err < 1e-10)
    dense <- sprintf("%.3f s, %.0f MB", d$time, d$mb)
  } else {
    d <- NULL
    dense <- sprintf("does not fit: %.0f GB per N x M double matrix", N * N * 8 / 1e9)
  }
  for (prec in c("float64", "float32")) {
    r <- res[[prec]]
    rows <- c(rows, sprintf("| %g | %s | %.4f | %.4f | %+.1f%% | %.4f | %.2f MB | %s | %s |",
                            N, prec, r$t_r, r$t_cc, 100 * (r$t_r - r$t_cc) / r$t_cc, r$t_cr, r$r_mb, dense,
                            if (is.null(d)) "-" else sprintf("%.0fx", d$time / r$t_r)))
  }
}
cat(sprintf("load average at end %s\n\n", load()))
cat("| N = M | dtype | R call (s) | C call, R's layout (s) | R overhead | C call, row-major (s) | rkp: R heap beyond the result | dense R, float64 (time, R heap beyond the result) | dense / rkp |\n")
cat("|---|---|---|---|---|---|---|---|---|\n")
cat(rows, sep = "\n")
cat(sprintf("\nper call at N = M = 100, 1 thread (median of means): R %.1f us, C %.1f us: the binding adds %.1f us per call\n",
            1e6 * pc[["r"]], 1e6 * pc[["c"]], 1e6 * (pc[["r"]] - pc[["c"]])))
