# LazyTensor expressions and their reductions against dense float64 R code.

test_that("the Gaussian kernel written with LazyTensors matches dense R", {
  d <- clouds()
  x_i <- Vi(d$x)
  y_j <- Vj(d$y)
  K <- exp(-sum((x_i - y_j)^2) / 0.4^2)
  Kd <- exp(-sqdist_exact(d$x, d$y) / 0.4^2)
  expect_equal(sum(K, index = "j"), matrix(rowSums(Kd)), tolerance = 1e-12)
  expect_equal(sum(K, index = "i"), matrix(colSums(Kd)), tolerance = 1e-12)
  expect_equal(K %*% d$b, Kd %*% d$b, tolerance = 1e-12)
  expect_equal(K %*% d$b[, 1], Kd %*% d$b[, 1], tolerance = 1e-12)
  expect_equal(t(K) %*% d$x[, 1], t(Kd) %*% d$x[, 1], tolerance = 1e-12)
})

test_that("%*% still multiplies ordinary matrices", {
  a <- matrix(1:6, 2)
  expect_identical(a %*% t(a), base::`%*%`(a, t(a)))
})

test_that("arithmetic, powers and math functions match R element by element", {
  d <- clouds(N = 11, M = 7, D = 1)
  x <- d$x; y <- d$y
  xi <- Vi(x); yj <- Vj(y)
  Xd <- matrix(x, 11, 7); Yd <- matrix(y, 11, 7, byrow = TRUE)
  sum_j <- function(L) sum(L + 0 * xi + 0 * yj, index = "j")  # fixes the numbers of i and j
  cases <- list(
    list(xi + yj, Xd + Yd), list(xi - 2 * yj, Xd - 2 * Yd), list(xi * yj / 3, Xd * Yd / 3),
    list(xi / (yj + 1), Xd / (Yd + 1)), list(-xi + 0.5, -Xd + 0.5), list(xi^2, Xd^2),
    list(xi^3, Xd^3), list(xi^0.5, sqrt(Xd)), list(xi^-0.5, 1 / sqrt(Xd)), list(xi^1.7, Xd^1.7),
    list(exp(xi - yj), exp(Xd - Yd)), list(log(xi + yj), log(Xd + Yd)), list(sqrt(xi), sqrt(Xd)),
    list(abs(xi - yj), abs(Xd - Yd)), list(sin(xi * yj), sin(Xd * Yd)), list(cos(xi), cos(Xd)),
    list(tan(xi), tan(Xd)), list(asin(xi), asin(Xd)), list(acos(yj), acos(Yd)),
    list(atan(xi - yj), atan(Xd - Yd)), list(tanh(xi - yj), tanh(Xd - Yd)),
    list(sign(xi - yj), sign(Xd - Yd)), list(floor(4 * xi), floor(4 * Xd)),
    list(square(xi), Xd^2), list(rsqrt(yj), 1 / sqrt(Yd)), list(inv(xi), 1 / Xd),
    list(relu(xi - yj), pmax(Xd - Yd, 0)), list(step(xi - yj), (Xd - Yd >= 0) * 1),
    list(xlogx(xi), Xd * log(Xd)), list(sinxdivx(xi), sin(Xd) / Xd),
    list(clamp(xi - yj, -0.2, 0.3), pmin(pmax(Xd - Yd, -0.2), 0.3)),
    list(xi < yj, (Xd < Yd) * 1), list(xi >= yj, (Xd >= Yd) * 1),
    list(round(10 * xi, 1), round(10 * Xd, 1)), list(Pm(c(2.5)) * xi, 2.5 * Xd))
  for (k in seq_along(cases))
    expect_equal(sum_j(cases[[k]][[1]]), matrix(rowSums(cases[[k]][[2]])), tolerance = 1e-12,
                 label = sprintf("case %d: %s", k, cases[[k]][[1]]$formula))
})

test_that("vector operations: norms, scalar products, components (1-based)", {
  d <- clouds(N = 9, M = 6)
  xi <- Vi(d$x); yj <- Vj(d$y)
  D <- sqdist_exact(d$x, d$y)
  expect_equal(sum(sqdist(xi, yj), index = "j"), matrix(rowSums(D)), tolerance = 1e-12)
  expect_equal(sum(sqnorm2(xi - yj), index = "j"), matrix(rowSums(D)), tolerance = 1e-12)
  expect_equal(sum(norm2(xi - yj), index = "j"), matrix(rowSums(sqrt(D))), tolerance = 1e-12)
  expect_equal(sum(xi | yj, index = "j"), matrix(rowSums(d$x %*% t(d$y))), tolerance = 1e-12)
  expect_equal(sum(elem(xi, 2) * yj, index = "j"),
               outer(d$x[, 2], colSums(d$y)) * 1, tolerance = 1e-12)
  e <- sum(extract(xi, 2, 2) + 0 * elem(yj, 1), index = "j")
  expect_equal(e, d$x[, 2:3] * 6, tolerance = 1e-12)
  expect_equal(sum(concat(xi, elem(yj, 3)), index = "j"),
               cbind(d$x * 6, rep(sum(d$y[, 3]), 9)), tolerance = 1e-12)
  expect_equal(sum(normalize(xi) + 0 * elem(yj, 1), index = "j"),
               6 * d$x / sqrt(rowSums(d$x^2)), tolerance = 1e-12)
  expect_equal(xi$dim, 3L)
  expect_equal(sqnorm2(xi)$dim, 1L)
  expect_equal(sum(xi)$dim, 1L)
  expect_equal(concat(xi, yj)$dim, 6L)
  expect_equal(tensorprod(xi, yj)$dim, 9L)
  expect_equal(one_hot(floor(3 * elem(xi, 1)), 3)$dim, 3L)
})

test_that("min, max, argmin, argKmin, logsumexp over LazyTensors match dense R", {
  d <- clouds(N = 30, M = 45)
  xi <- Vi(d$x); yj <- Vj(d$y)
  D2 <- sqnorm2(xi - yj)
  D <- sqdist_exact(d$x, d$y)
  expect_equal(min(D2, index = "j"), matrix(apply(D, 1, min)), tolerance = 1e-12)
  expect_equal(max(D2, index = "i"), matrix(apply(D, 2, max)), tolerance = 1e-12)
  expect_equal(argmin(D2, index = "j"), matrix(apply(D, 1, which.min)))
  expect_equal(argmax(D2, index = "j"), matrix(apply(D, 1, which.max)))
  expect_equal(argKmin(D2, 5, index = "j"), t(apply(D, 1, order))[, 1:5])
  expect_equal(argKmin(D2, 5, index = "i"), t(apply(D, 2, order))[, 1:5])
  expect_equal(Kmin(D2, 2, index = "j"), t(apply(D, 1, sort))[, 1:2], tolerance = 1e-12)
  ma <- min_argmin(D2, index = "j")
  expect_equal(ma$argmin, matrix(apply(D, 1, which.min)))
  expect_equal(logsumexp(-D2, index = "j"), matrix(log(rowSums(exp(-D)))), tolerance = 1e-12)
  w <- Vj(runif(45) + 0.5)
  expect_equal(logsumexp(-D2, index = "j", weight = w),
               matrix(log(exp(-D) %*% w$vars[[1]]$x)), tolerance = 1e-12)
  b <- d$y[, 1:2]
  expect_equal(sumsoftmaxweight(-D2, index = "j", weight = Vj(b)),
               (exp(-D) / rowSums(exp(-D))) %*% b, tolerance = 1e-12)
  # index = NA: reductions over the vector's components, new LazyTensors
  expect_equal(sum(sum(xi) + 0 * elem(yj, 1), index = "j"), matrix(45 * rowSums(d$x)), tolerance = 1e-12)
  expect_equal(sum(min(xi) * max(yj), index = "j"),
               matrix(apply(d$x, 1, min) * sum(apply(d$y, 1, max))), tolerance = 1e-12)
  expect_equal(sum(argmin(xi) + 0 * elem(yj, 1), index = "j"), matrix(45 * apply(d$x, 1, which.min)))
  expect_equal(sum(argmax(xi) + 0 * elem(yj, 1), index = "j"), matrix(45 * apply(d$x, 1, which.max)))
})

test_that("reductions in float32 stay within float32 accuracy", {
  d <- clouds(N = 200, M = 300)
  K <- exp(-sqnorm2(Vi(d$x) - Vj(d$y)) * 3)
  ref <- K %*% d$b
  f32 <- with_options(K %*% d$b, precision = "float32")
  expect_lt(max(abs(f32 - ref)) / max(abs(ref)), 1e-5)
})

test_that("t() swaps the roles of i and j", {
  d <- clouds()
  K <- exp(-sqnorm2(Vi(d$x) - Vj(d$y)))
  expect_equal(sum(t(K), index = "j"), sum(K, index = "i"), tolerance = 1e-12)
  expect_output(print(K), "inner dimension 1; 37 points i, 23 points j")
})

test_that("weighted norms, matrix products, tensor products, one-hot, mod, ifelse_lt match R", {
  d <- clouds(N = 8, M = 5)
  xi <- Vi(d$x); yj <- Vj(d$y)
  one_j <- 0 * elem(yj, 1)  # pins the 5 points j
  w <- c(0.5, 2, 3)
  Wd <- outer(rowSums(sweep(d$x^2, 2, w, "*")), rep(1, 5))
  expect_equal(sum(weightedsqnorm(xi, Pm(w)) + one_j, index = "j"), matrix(rowSums(Wd)), tolerance = 1e-12)
  S <- matrix(c(2, 0.5, 0, 0.5, 1, 0.2, 0, 0.2, 3), 3)
  wd <- sapply(1:5, function(j) apply(d$x, 1, function(p) { v <- p - d$y[j, ]; sum(v * (S %*% v)) }))
  expect_equal(sum(weightedsqdist(xi, yj, Pm(as.vector(t(S)))), index = "j"),
               matrix(rowSums(wd)), tolerance = 1e-12)
  A <- matrix(1:6, 2)  # 2 x 3: a matrix parameter is read row by row, as KeOps stores it
  expect_equal(sum(matvecmult(Pm(A), yj) + 0 * elem(xi, 1), index = "j"),
               matrix(A %*% colSums(d$y), 8, 2, byrow = TRUE), tolerance = 1e-12)
  expect_equal(sum(matvecmult(Pm(as.vector(t(A))), yj) + 0 * elem(xi, 1), index = "j"),
               matrix(A %*% colSums(d$y), 8, 2, byrow = TRUE), tolerance = 1e-12)
  expect_equal(sum(vecmatmult(extract(xi, 1, 2), Pm(as.vector(t(A)))) + one_j, index = "j"),
               5 * d$x[, 1:2] %*% A, tolerance = 1e-12)
  tp <- sum(tensorprod(xi, yj), index = "j")
  expect_equal(tp[, 2 * 3 + 3], d$x[, 3] * sum(d$y[, 3]), tolerance = 1e-12)
  expect_equal(tp[, 1 * 3 + 2], d$x[, 2] * sum(d$y[, 2]), tolerance = 1e-12)
  cls <- floor(3 * d$x[, 1])
  expect_equal(sum(one_hot(floor(3 * elem(xi, 1)), 3) + one_j, index = "j"),
               5 * outer(cls, 0:2, "==") * 1)
  expect_equal(sum(mod(5 * xi, 0.7, 0.1) + one_j, index = "j"),
               5 * (5 * d$x - 0.7 * floor((5 * d$x - 0.1) / 0.7)), tolerance = 1e-12)
  expect_equal(sum(ifelse_lt(elem(xi, 1) - elem(yj, 1), 1, -1), index = "j"),
               matrix(rowSums(ifelse(outer(d$x[, 1], d$y[, 1], "-") >= 0, 1, -1))))
})
