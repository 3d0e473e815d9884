#!/usr/bin/env Rscript
# gaussian_kernel.R: the Gaussian kernel product a_i = sum_j exp(-|x_i - y_j|^2 / s^2) b_j
# from R with rkp, written both ways (formula text and LazyTensor), checked
# against the dense R computation on a subset of rows.
#
# Usage: Rscript gaussian_kernel.R [N] [M]     (default N = M = 100000)
#        Rscript gaussian_kernel.R --help
args <- commandArgs(trailingOnly = TRUE)
if (length(args) && args[1] %in% c("-h", "--help")) {
  cat("Usage: Rscript gaussian_kernel.R [N] [M]\n",
      "Gaussian kernel product of N x M points in 3D with rkp (default N = M = 1e5);\n",
      "prints the time and compares 100 rows with the dense R computation.\n", sep = "")
  quit(status = 0)
}
suppressPackageStartupMessages(library(rkp))
N <- if (length(args) >= 1) as.numeric(args[1]) else 1e5
M <- if (length(args) >= 2) as.numeric(args[2]) else N
set.seed(0)
x <- matrix(runif(N * 3), N)          # one point per row
y <- matrix(runif(M * 3), M)
b <- matrix(rnorm(M), M)
s <- 0.1

# 1. The formula, rkeops style.
op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)",
                   c("x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"))
cat(sprintf("N = %g, M = %g: the dense kernel matrix would take %.1f GB\n", N, M, N * M * 8 / 1e9))
t1 <- system.time(a1 <- op(list(x, y, 1 / s^2, b)))[["elapsed"]]
cat(sprintf("keops_kernel, float64:  %.2f s\n", t1))

# 2. The same with LazyTensors.
x_i <- Vi(x)
y_j <- Vj(y)
K_ij <- exp(-sqnorm2(x_i - y_j) / s^2)
t2 <- system.time(a2 <- K_ij %*% b)[["elapsed"]]
cat(sprintf("LazyTensor  %%*%%, float64: %.2f s\n", t2))
old <- rkp_options(precision = "float32")
t3 <- system.time(a3 <- K_ij %*% b)[["elapsed"]]
do.call(rkp_options, old)
cat(sprintf("LazyTensor  %%*%%, float32: %.2f s\n", t3))

# Check 100 rows against the dense R code.
rows <- sample(N, min(N, 100))
D2 <- outer(rowSums(x[rows, , drop = FALSE]^2), rowSums(y^2), "+") - 2 * x[rows, , drop = FALSE] %*% t(y)
ref <- exp(-D2 / s^2) %*% b
err <- function(a) max(abs(a[rows, ] - ref)) / max(abs(ref))
cat(sprintf("relative error vs dense R: formula %.1e, LazyTensor %.1e, float32 %.1e\n",
            err(a1), err(a2), err(a3)))
stopifnot(err(a1) < 1e-10, err(a2) < 1e-10, err(a3) < 1e-4)
