# The package takes kp.h's facts from libkp, never from copies of its own:
# the reductions (kp_reduction_name/_flags), status names (kp_status_name),
# constants (kp_constant) and output shapes (kp_plan_output_shape).

test_that("the reductions are kp.h's, with their flags", {
  r <- rkp:::.reductions()
  kph <- .Call(rkp:::rkp_reductions)
  expect_identical(r, kph)
  expect_gte(length(r$name), 12L)
  expect_true(all(c("Sum", "LogSumExp", "SumSoftMaxWeight", "KMin_ArgKMin") %in% r$name))
  expect_identical(r$takes_k, r$name %in% c("KMin", "ArgKMin", "KMin_ArgKMin"))
  expect_identical(r$indices, grepl("Arg", r$name))
  # no table of reductions or engines is kept in the package's namespace
  ns <- asNamespace("rkp")
  expect_false(exists(".REDUCTIONS", envir = ns, inherits = FALSE))
  expect_false(exists(".ENGINES", envir = ns, inherits = FALSE))
})

test_that("every reduction of kp.h runs and gives the outputs its flags say", {
  r <- rkp:::.reductions()
  x <- matrix(c(0, 1, 3, 7, 2), ncol = 1)
  y <- matrix(c(5, 4, 0.5, 8), ncol = 1)
  for (k in seq_along(r$name)) {
    red <- r$name[k]
    opt <- if (r$takes_k[k]) ",2" else ""
    g <- if (r$takes_g[k]) ",y" else ""
    op <- keops_kernel(sprintf("%s_Reduction(-SqDist(x,y)%s,1%s)", red, opt, g), c("x = Vi(1)", "y = Vj(1)"))
    info <- attr(op, "rkp")$info
    expect_identical(info$reduction_name, red)
    expect_identical(info$out_dim > 0, r$values[k], label = red)
    expect_identical(info$out_index_dim > 0, r$indices[k], label = red)
    res <- op(list(x, y))
    if (r$values[k] && r$indices[k]) {
      expect_length(res, 2L)
      expect_true(is.integer(res[[2]]), label = red)
    } else if (r$indices[k]) {
      expect_true(is.integer(res), label = red)
      expect_true(all(res >= 1L & res <= 4L), label = red)
    } else {
      expect_true(is.double(res), label = red)
      expect_equal(nrow(res), 5L, label = red)
    }
  }
})

test_that("status names, engines, dtypes and schemes are kp.h's", {
  err <- tryCatch(keops_kernel("Sum_Reduction(Exq(x), 1)", "x = Vi(1)"), error = identity)
  expect_identical(err$status, "KP_ERR_PARSE")
  expect_identical(rkp:::.kp_constant("KP_FLOAT64"), .Call(rkp:::rkp_constant, "KP_FLOAT64"))
  expect_identical(rkp:::.engine_code("opencl"), .Call(rkp:::rkp_constant, "KP_ENGINE_OPENCL"))
  expect_identical(rkp:::.scheme_code("direct_sum"), .Call(rkp:::rkp_constant, "KP_SUM_PLAIN"))
  expect_true(is.na(.Call(rkp:::rkp_constant, "KP_NO_SUCH_NAME")))
  expect_error(rkp:::.kp_constant("KP_NO_SUCH_NAME"), "no constant")
})

test_that("output rows come from kp_plan_output_shape", {
  # a parameter gradient sums its rows: one row, whatever the point counts
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)",
                     c("x = Vi(2)", "y = Vj(2)", "g = Pm(1)", "b = Vj(1)"))
  gg <- keops_grad(op, "g")
  x <- matrix(runif(14), 7); y <- matrix(runif(10), 5); b <- matrix(runif(5), 5)
  res <- gg(list(x, y, 0.5, b, matrix(1, 7, 1)))
  expect_equal(dim(res), c(1L, 1L))
  # axis 0: one row per j
  op0 <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)), 0)", c("x = Vi(2)", "y = Vj(2)"))
  expect_equal(dim(op0(list(x, y))), c(5L, 1L))
  # no j variable: KeOps' convention, one j point
  op1 <- keops_kernel("Sum_Reduction(x, 1)", "x = Vi(2)")
  expect_equal(op1(list(x)), x)
})
