# Gradients against central finite differences of the float64 forward.

gauss <- "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)"
gauss_args <- c("x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)")

test_that("keops_grad of a Sum matches finite differences for Vi, Vj and Pm arguments", {
  d <- clouds(N = 6, M = 5)
  op <- keops_kernel(gauss, gauss_args)
  eta <- matrix(rnorm(6 * 2), 6)
  input <- list(d$x, d$y, 1.7, d$b)
  loss <- function(k) function(v) { inp <- input; inp[[k]] <- v; sum(op(inp) * eta) }
  for (var in list("x", "y", "g", 3)) {
    k <- if (is.character(var)) match(var, c("x", "y", "g", "b")) else var + 1
    g <- keops_grad(op, var)(c(input, list(eta)))
    fd <- finite_diff(loss(k), input[[k]])
    expect_equal(as.vector(g), as.vector(fd), tolerance = 1e-6, label = paste("d/d", var))
  }
})

test_that("keops_grad of LogSumExp and Min matches finite differences", {
  d <- clouds(N = 5, M = 7)
  a2 <- c("x = Vi(3)", "y = Vj(3)")
  for (f in c("LogSumExp_Reduction(-SqDist(x,y), 1)", "Min_Reduction(SqDist(x,y), 1)",
              "SumSoftMaxWeight_Reduction(-SqDist(x,y), 1, y)")) {
    op <- keops_kernel(f, a2)
    out <- op(list(d$x, d$y))
    eta <- matrix(rnorm(length(out)), nrow(out))
    for (k in 1:2) {
      g <- keops_grad(op, k - 1)(list(d$x, d$y, eta))
      loss <- function(v) { inp <- list(d$x, d$y); inp[[k]] <- v; sum(op(inp) * eta) }
      expect_equal(as.vector(g), as.vector(finite_diff(loss, list(d$x, d$y)[[k]])),
                   tolerance = 1e-6, label = paste(f, "argument", k))
    }
  }
})

test_that("gradients work with inner_dim = 'row'", {
  d <- clouds(N = 6, M = 5)
  op <- keops_kernel(gauss, gauss_args)
  eta <- matrix(rnorm(12), 6)
  gop <- keops_grad(op, "x")
  by_col <- gop(list(d$x, d$y, 1.7, d$b, eta))
  by_row <- gop(list(t(d$x), t(d$y), 1.7, t(d$b), t(eta)), inner_dim = "row")
  expect_equal(t(by_row), by_col, tolerance = 1e-14)
})

test_that("grad() of a LazyTensor reduction matches finite differences", {
  d <- clouds(N = 6, M = 4)
  eta <- matrix(rnorm(6), 6)
  f <- function(xv) sum(sum(exp(-sqnorm2(Vi(xv) - Vj(d$y))), index = "j") * eta)
  x_i <- Vi(d$x)
  g <- grad(exp(-sqnorm2(x_i - Vj(d$y))), eta, "Sum", x_i, "j")
  expect_equal(dim(g), dim(d$x))
  expect_equal(g, finite_diff(f, d$x), tolerance = 1e-6)
  fl <- function(xv) sum(logsumexp(-sqnorm2(Vi(xv) - Vj(d$y)), index = "j") * eta)
  gl <- grad(-sqnorm2(x_i - Vj(d$y)), eta, "LogSumExp", x_i, "j")
  expect_equal(gl, finite_diff(fl, d$x), tolerance = 1e-6)
})

test_that("a gradient is a kernel: its own gradient (second order) matches finite differences", {
  d <- clouds(N = 4, M = 3)
  op <- keops_kernel(gauss, gauss_args)
  eta <- matrix(rnorm(8), 4)
  gx <- keops_grad(op, "x")
  w <- matrix(rnorm(12), 4)
  gxx <- keops_grad(gx, "x")(list(d$x, d$y, 1.7, d$b, eta, w))
  loss <- function(v) sum(gx(list(v, d$y, 1.7, d$b, eta)) * w)
  expect_equal(gxx, finite_diff(loss, d$x), tolerance = 1e-6)
})
