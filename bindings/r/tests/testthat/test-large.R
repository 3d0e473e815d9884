# N = 10^5 points: results right on sampled rows, memory O(N + M) (the dense
# kernel matrix of this case would take 8 GB).

peak_rss_mb <- function() {
  st <- readLines("/proc/self/status")
  as.numeric(sub("[^0-9]*([0-9]+).*", "\\1", grep("^VmHWM", st, value = TRUE))) / 1024
}

test_that("a Gaussian kernel product of 1e5 x 1e4 points runs in O(N + M) memory", {
  skip_if_not(file.exists("/proc/self/status"), "needs /proc to read the peak memory")
  set.seed(3)
  N <- 1e5; M <- 1e4
  x <- matrix(runif(N * 3), N); y <- matrix(runif(M * 3), M); b <- runif(M)
  before <- peak_rss_mb()
  res <- with_options(exp(-sqnorm2(Vi(x) - Vj(y)) * 8) %*% b, precision = "float32")
  grown <- peak_rss_mb() - before
  expect_equal(dim(res), c(N, 1L))
  rows <- c(1, 2, sample(N, 20), N)
  ref <- exp(-8 * sqdist_exact(x[rows, ], y)) %*% b
  expect_lt(max(abs(res[rows, ] - ref) / abs(ref)), 1e-5)
  expect_lt(grown, 100)  # MB; the inputs are 3 MB, the output 0.8 MB
})
