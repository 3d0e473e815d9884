# Bad input: a classed R error with libkp's (or the binding's) message, never a crash.

gauss_args <- c("x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)")
op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", gauss_args)
d <- clouds()

test_that("malformed formulas give libkp's parse or shape error", {
  expect_error(keops_kernel("Sum_Reduction(Exq(x), 1)", "x = Vi(3)"),
               "unknown function 'Exq'", class = "rkp_error_parse")
  expect_error(keops_kernel("Sum_Reduction(x + y, 1)", c("x = Vi(3)", "y = Vj(2)")),
               class = "rkp_error_shape")
  expect_error(keops_kernel("Sum_Reduction(x, 1", "x = Vi(3)"), class = "rkp_error_parse")
  expect_error(keops_kernel(c("a", "b"), "x = Vi(3)"), "one character string")
  expect_error(keops_kernel("Sum_Reduction(x, 1)", "x = Vi(3)", sum_scheme = "fast"), "sum_scheme")
})

test_that("wrong shapes name the argument", {
  expect_error(op(list(d$x[, 1:2], d$y, 1, d$b)), "argument 0", class = "rkp_error_shape")
  expect_error(op(list(d$x, d$y, c(1, 2), d$b)), class = "rkp_error_shape")
  expect_error(op(list(d$x, d$y, 1, d$b[1:5, ])), class = "rkp_error_shape")
  expect_error(op(list(d$x, d$y, 1)), "takes 4 arguments")
  expect_error(op(list(d$x, d$y, 1, d$b, d$b)), "takes 4 arguments")
  expect_error(op(d$x), "must be a list")
  expect_error(op(list(d$x, d$y, 1, d$b), inner_dim = "diag"), "inner_dim")
  expect_error(op(list(z = d$x, d$y, 1, d$b)), "name every element")
  expect_error(op(list(z = d$x, y = d$y, g = 1, b = d$b)), "names 'z', which the formula's args do not declare")
})

test_that("non-numeric, complex, logical, sparse and 3-D inputs are refused", {
  expect_error(op(list(d$x, d$y, "1", d$b)), "input\\[\\[3\\]\\] must be a numeric")
  expect_error(op(list(d$x + 0i, d$y, 1, d$b)), "got complex")
  expect_error(op(list(d$x > 0.5, d$y, 1, d$b)), "got logical")
  expect_error(op(list(list(1), d$y, 1, d$b)), "got list")
  expect_error(op(list(array(0, c(2, 2, 3)), d$y, 1, d$b)), "3-D array")
  expect_error(op(list(factor(1:3), d$y, 1, d$b)), "got factor")
  skip_if_not_installed("Matrix")
  expect_error(op(list(Matrix::Matrix(d$x, sparse = TRUE), d$y, 1, d$b)), "must be a numeric")
})

test_that("NaN and NA propagate as IEEE arithmetic says, they are not errors", {
  x <- d$x
  x[2, 1] <- NaN
  x[3, 2] <- NA
  res <- op(list(x, d$y, 1, d$b))
  expect_true(all(is.na(res[2:3, ])))
  expect_false(anyNA(res[-(2:3), ]))
})

test_that("empty clouds give empty or zero results, not crashes", {
  res <- op(list(d$x[0, , drop = FALSE], d$y, 1, d$b))
  expect_equal(dim(res), c(0L, 2L))
  res <- op(list(d$x, d$y[0, , drop = FALSE], 1, d$b[0, , drop = FALSE]))
  expect_equal(res, matrix(0, d$N, 2))
})

test_that("K-reductions refuse K above the number of points", {
  kop <- keops_kernel("ArgKMin_Reduction(SqDist(x,y), 30, 1)", c("x = Vi(3)", "y = Vj(3)"))
  expect_error(kop(list(d$x, d$y)), class = "rkp_error_argument")
})

test_that("LazyTensor misuse gives clear errors", {
  xi <- Vi(d$x)
  expect_error(xi + Vj(matrix(1, 4, 2)), "dimensions 3 and 2", class = "rkp_error_shape")
  expect_error(xi + d$x, "wrap a matrix with Vi\\(\\) or Vj\\(\\)")
  expect_error(xi + Vi(d$x[1:5, ]), "37 and 5 points indexed by i")
  expect_error(sum(sqnorm2(xi - Vj(d$y)), index = "k"), "'index' must be")
  expect_error(argKmin(sqnorm2(xi - Vj(d$y)), 0, index = "j"), "'K' must be a whole number")
  expect_error(LazyTensor(xi), "already a LazyTensor")
  expect_error(Vi("a"), "must be a numeric")
  expect_error(xi & xi, "operator & is not defined")
  expect_error(gamma(xi), "gamma\\(\\) is not defined")
  expect_error(elem(xi, 4), class = "rkp_error_shape")
  expect_error(elem(xi, 0), "'m' must be a whole number >= 1")
  expect_error(sqnorm2(xi - Vj(d$y)) %*% d$b[1:4, ], "23 and 4 points indexed by j")
  expect_error(xi %*% d$b, "inner dimension 1")
  expect_error(keops_grad(function(x) x, "x"), "made by keops_kernel")
  expect_error(keops_grad(op, "z"), "not one of the formula's arguments")
  expect_error(keops_grad(op, 7), "0-based position below 4")
  expect_error(rkp_options(precision = "float16"), "precision")
  expect_error(rkp_options(threads = -1), "threads")
})
