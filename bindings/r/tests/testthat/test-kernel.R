# keops_kernel(): every reduction against dense float64 R code.

gauss_args <- c("x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)")

test_that("Gaussian kernel product over j and over i matches dense R", {
  d <- clouds()
  K <- exp(-2.5 * sqdist_exact(d$x, d$y))
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", gauss_args)
  res <- op(list(d$x, d$y, 2.5, d$b))
  expect_equal(dim(res), c(d$N, 2L))
  expect_equal(res, K %*% d$b, tolerance = 1e-12)
  op0 <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g), 0)",
                      c("x = Vi(3)", "y = Vj(3)", "g = Pm(1)"))
  expect_equal(op0(list(d$x, d$y, 2.5)), matrix(colSums(K)), tolerance = 1e-12)
})

test_that("inner_dim = 'row' reads columns as points without changing results", {
  d <- clouds()
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", gauss_args)
  by_col <- op(list(d$x, d$y, 2.5, d$b))
  by_row <- op(list(t(d$x), t(d$y), 2.5, t(d$b)), inner_dim = "row")
  expect_equal(dim(by_row), c(2L, d$N))
  expect_identical(t(by_row), by_col)
})

test_that("named input is matched to the args, positions follow the aliases", {
  d <- clouds()
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)",
                     c("b = Vj(3,2)", "x = Vi(0,3)", "g = Pm(2,1)", "y = Vj(1,3)"))
  ref <- exp(-2.5 * sqdist_exact(d$x, d$y)) %*% d$b
  expect_equal(op(list(b = d$b, y = d$y, x = d$x, g = 2.5)), ref, tolerance = 1e-12)
  expect_equal(op(list(d$x, d$y, 2.5, d$b)), ref, tolerance = 1e-12)
  expect_equal(op()$positions, c(b = 3L, x = 0L, g = 2L, y = 1L))
})

test_that("integer matrices and data frames are accepted as numbers", {
  d <- clouds()
  xi <- matrix(1:6, 3)
  op <- keops_kernel("Sum_Reduction(SqDist(x,y), 1)", c("x = Vi(2)", "y = Vj(2)"))
  expect_equal(op(list(xi, as.data.frame(d$x[1:4, 1:2]))),
               matrix(rowSums(sqdist_exact(xi * 1, d$x[1:4, 1:2]))), tolerance = 1e-12)
})

test_that("LogSumExp, Min, Max, ArgMin, ArgMax and K-reductions match dense R", {
  d <- clouds(N = 41, M = 29)
  D <- sqdist_exact(d$x, d$y)
  a2 <- c("x = Vi(3)", "y = Vj(3)")
  run <- function(red) keops_kernel(red, a2)(list(d$x, d$y))
  expect_equal(run("LogSumExp_Reduction(-SqDist(x,y), 1)"),
               matrix(log(rowSums(exp(-D)))), tolerance = 1e-12)
  expect_equal(run("Min_Reduction(SqDist(x,y), 1)"), matrix(apply(D, 1, min)), tolerance = 1e-12)
  expect_equal(run("Max_Reduction(SqDist(x,y), 0)"), matrix(apply(D, 2, max)), tolerance = 1e-12)
  am <- run("ArgMin_Reduction(SqDist(x,y), 1)")
  expect_type(am, "integer")
  expect_equal(am, matrix(apply(D, 1, which.min)))
  expect_equal(run("ArgMax_Reduction(SqDist(x,y), 0)"), matrix(apply(D, 2, which.max)))
  both <- run("Min_ArgMin_Reduction(SqDist(x,y), 1)")
  expect_named(both, c("min", "argmin"))
  expect_equal(both$argmin, am)
  knn <- run("ArgKMin_Reduction(SqDist(x,y), 4, 1)")
  expect_equal(dim(knn), c(41L, 4L))
  expect_equal(knn, t(apply(D, 1, order))[, 1:4])
  kv <- run("KMin_Reduction(SqDist(x,y), 4, 1)")
  expect_equal(kv, t(apply(D, 1, sort))[, 1:4], tolerance = 1e-12)
  kk <- run("KMin_ArgKMin_Reduction(SqDist(x,y), 3, 0)")
  expect_equal(kk$argKmin, t(apply(D, 2, order))[, 1:3])
})

test_that("SumSoftMaxWeight matches the dense softmax-weighted sum", {
  d <- clouds()
  D <- sqdist_exact(d$x, d$y)
  op <- keops_kernel("SumSoftMaxWeight_Reduction(-SqDist(x,y), 1, b)",
                     c("x = Vi(3)", "y = Vj(3)", "b = Vj(2)"))
  W <- exp(-D) / rowSums(exp(-D))
  expect_equal(op(list(d$x, d$y, d$b)), W %*% d$b, tolerance = 1e-12)
})

test_that("float32 is within float32 accuracy, threads do not change results", {
  d <- clouds(N = 300, M = 500)
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", gauss_args)
  ref <- op(list(d$x, d$y, 2.5, d$b))
  f32 <- with_options(op(list(d$x, d$y, 2.5, d$b)), precision = "float32")
  expect_lt(max(abs(f32 - ref)) / max(abs(ref)), 1e-5)
  expect_gt(max(abs(f32 - ref)), 0)  # it did run in float32
  one <- with_options(op(list(d$x, d$y, 2.5, d$b)), threads = 1)
  two <- with_options(op(list(d$x, d$y, 2.5, d$b)), threads = 2)
  expect_identical(one, two)
  expect_identical(one, ref)
})

test_that("the rkeops option helpers set precision and threads", {
  old <- rkp_options()
  on.exit(do.call(rkp_options, old))
  rkeops_use_float32()
  expect_equal(rkp_options()$precision, "float32")
  rkeops_use_float64()
  expect_equal(rkp_options()$precision, "float64")
  rkeops_use_cpu(3)
  expect_equal(rkp_options()$threads, 3L)
})

test_that("sum schemes are accepted and agree in float64", {
  d <- clouds()
  ref <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", gauss_args)(list(d$x, d$y, 2.5, d$b))
  for (s in c("block_sum", "kahan_scheme", "direct_sum")) {
    op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", gauss_args, sum_scheme = s)
    expect_equal(op(list(d$x, d$y, 2.5, d$b)), ref, tolerance = 1e-12)
  }
})

test_that("exact sums are correctly rounded and do not depend on the order of the points", {
  terms <- c(2^60, 1, -2^60, 2^-40, 3, -3)
  x <- matrix(1, 1, 1)
  op <- keops_kernel("Sum_Reduction(x*b, 1)", c("x = Vi(1)", "b = Vj(1)"), sum_scheme = "exact_sum")
  for (p in list(seq_along(terms), rev(seq_along(terms)), c(2, 4, 6, 1, 3, 5)))
    expect_identical(with_options(op(list(x, matrix(terms[p], ncol = 1))), precision = "float64")[1, 1], 1 + 2^-40)
  block <- keops_kernel("Sum_Reduction(x*b, 1)", c("x = Vi(1)", "b = Vj(1)"), sum_scheme = "block_sum")
  expect_false(identical(with_options(block(list(x, matrix(terms, ncol = 1))), precision = "float64")[1, 1],
                         1 + 2^-40))
})

test_that("a matrix parameter is read row by row: MatVecMult(A, v) is A %*% v", {
  d <- clouds()
  A <- matrix(c(1, -2, 0.5, 3, 4, -1), 2)
  op <- keops_kernel("Sum_Reduction(MatVecMult(A, y), 0)", c("A = Pm(6)", "y = Vj(3)", "x = Vi(3)"))
  expect_equal(op(list(A, d$y, d$x)), d$N * t(A %*% t(d$y)), tolerance = 1e-12)
  expect_equal(op(list(as.vector(t(A)), d$y, d$x)), d$N * t(A %*% t(d$y)), tolerance = 1e-12)
  f32 <- with_options(op(list(A, d$y, d$x)), precision = "float32")
  expect_equal(f32, d$N * t(A %*% t(d$y)), tolerance = 1e-5)
})
