# Engines: libkp's OpenCL engine (PoCL on the CPU here) against the CPU one;
# an engine that cannot run is refused with libkp's reason, settings unchanged.

test_that("an engine that cannot run here is refused with libkp's reason", {
  expect_true(rkp_engine_available("cpu"))
  expect_error(rkp_options(engine = "tpu"), "'engine' must be one of")
  if (!isTRUE(rkp_engine_available("cuda"))) {
    expect_type(attr(rkp_engine_available("cuda"), "reason"), "character")
    expect_error(rkp_options(engine = "cuda"), class = "rkp_error_unsupported")
    expect_equal(rkp_options()$engine, "cpu")
  }
})

test_that("the OpenCL engine agrees with the CPU engine", {
  skip_if_not(isTRUE(rkp_engine_available("opencl")), "no OpenCL platform")
  d <- clouds(N = 300, M = 200)
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)",
                     c("x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)"))
  knn <- function() argKmin(sqnorm2(Vi(d$x) - Vj(d$y)), 4, index = "j")
  ref <- op(list(d$x, d$y, 2.5, d$b))
  ref_knn <- knn()
  for (prec in c("float32", "float64")) {
    res <- with_options(list(op(list(d$x, d$y, 2.5, d$b)), knn()), engine = "opencl", precision = prec)
    expect_equal(res[[1]], ref, tolerance = if (prec == "float32") 1e-5 else 1e-12, label = prec)
    expect_equal(res[[2]], ref_knn, label = prec)
  }
  expect_equal(rkp_options()$engine, "cpu")
})
