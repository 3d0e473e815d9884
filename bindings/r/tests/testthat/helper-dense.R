# Dense float64 references: the N x M matrices users would otherwise build.
sqdist_matrix <- function(x, y) {
  pmax(outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y), 0)
}

# Exact pairwise squared distances (no cancellation), for argmin ties checks.
sqdist_exact <- function(x, y) {
  D <- matrix(0, nrow(x), nrow(y))
  for (c in seq_len(ncol(x))) D <- D + outer(x[, c], y[, c], "-")^2
  D
}

clouds <- function(N = 37, M = 23, D = 3, seed = 1) {
  set.seed(seed)
  list(x = matrix(runif(N * D), N), y = matrix(runif(M * D), M),
       b = matrix(rnorm(M * 2), M), N = N, M = M)
}

# Central finite differences of the scalar f at x (a matrix or vector).
finite_diff <- function(f, x, h = 1e-6) {
  g <- x
  for (t in seq_along(x)) {
    xp <- x; xp[t] <- xp[t] + h
    xm <- x; xm[t] <- xm[t] - h
    g[t] <- (f(xp) - f(xm)) / (2 * h)
  }
  g
}

with_options <- function(code, ...) {
  old <- rkp_options(...)  # set before `code` is evaluated (lazily, below)
  on.exit(do.call(rkp_options, old))
  force(code)
}
