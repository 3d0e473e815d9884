# reductions.R: reductions of LazyTensors over i or j, %*%, and gradients.

.axis_of <- function(index) {
  if (identical(index, "i")) return(0L)
  if (identical(index, "j")) return(1L)
  stop("rkp: 'index' must be \"i\" (reduce over i, one result per j) or \"j\" (reduce over j, one result per i)",
       call. = FALSE)
}

# The reduction's text, its leaves' data in position order and the point counts.
.reduction_call <- function(x, red, index, opt_arg = NULL, weight = NULL) {
  axis <- .axis_of(index)
  vars <- x$vars
  wtext <- NULL
  ni <- x$ni
  nj <- x$nj
  if (!is.null(weight)) {
    weight <- .as_lt(weight)
    vars[names(weight$vars)] <- weight$vars
    wtext <- weight$formula
    ni <- .merge_n(ni, weight$ni, "i")
    nj <- .merge_n(nj, weight$nj, "j")
  }
  text <- if (.reduction_has(red, "takes_k")) {
    sprintf("%s_Reduction(%s,%d,%d)", red, x$formula, .whole(opt_arg, "K"), axis)
  } else if (.reduction_has(red, "takes_g")) {
    sprintf("%s_Reduction(%s,%d,%s)", red, x$formula, axis, wtext)
  } else if (red == "LogSumExp" && !is.null(wtext)) {
    # log sum_j exp(f_ij) w_ij = LogSumExp(f_ij + log w_ij), for w > 0
    sprintf("LogSumExp_Reduction((%s)+Log(%s),%d)", x$formula, wtext, axis)
  } else {
    sprintf("%s_Reduction(%s,%d)", red, x$formula, axis)
  }
  # point counts: libkp's, from the leaves (-1); an index without leaves has one point
  list(op = .parse(text, .aliases(vars)), args = lapply(vars, `[[`, "x"), sizes = c(-1, -1))
}

.reduce <- function(x, red, index, opt_arg = NULL, weight = NULL) {
  if (!inherits(x, "LazyTensor")) stop("rkp: 'x' must be a LazyTensor", call. = FALSE)
  rc <- .reduction_call(x, red, index, opt_arg, weight)
  .format_result(.exec(rc$op, unname(rc$args), 0L, rc$sizes), red)
}

#' Reductions of LazyTensors
#'
#' sum(x, index = "j") sums over j (one row per point i); index = "i" sums over
#' i; index = NA sums the components of the vector x (a new LazyTensor).
#' @export
sum.LazyTensor <- function(x, index = NA, ..., na.rm = FALSE) {
  if (...length()) stop("rkp: sum() of a LazyTensor takes one LazyTensor", call. = FALSE)
  if (length(index) == 1L && is.na(index)) return(.combine("Sum(%s)", x))
  .reduce(x, "Sum", index)
}

#' @export
min.LazyTensor <- function(x, index = NA, ..., na.rm = FALSE) {
  if (...length()) stop("rkp: min() of a LazyTensor takes one LazyTensor", call. = FALSE)
  if (length(index) == 1L && is.na(index)) return(.combine("Min(%s)", x))
  .reduce(x, "Min", index)
}

#' @export
max.LazyTensor <- function(x, index = NA, ..., na.rm = FALSE) {
  if (...length()) stop("rkp: max() of a LazyTensor takes one LazyTensor", call. = FALSE)
  if (length(index) == 1L && is.na(index)) return(.combine("Max(%s)", x))
  .reduce(x, "Max", index)
}

#' @export
argmin <- function(x, index = NA) {
  # the component's number, from 1 as R numbers them (libkp's ArgMin counts from 0)
  if (length(index) == 1L && is.na(index)) return(.combine("(ArgMin(%s)+IntCst(1))", x))
  .reduce(x, "ArgMin", index)
}

#' @export
argmax <- function(x, index = NA) {
  if (length(index) == 1L && is.na(index)) return(.combine("(ArgMax(%s)+IntCst(1))", x))
  .reduce(x, "ArgMax", index)
}

#' @export
sum_reduction <- function(x, index) .reduce(x, "Sum", index)
#' @export
min_reduction <- function(x, index) .reduce(x, "Min", index)
#' @export
max_reduction <- function(x, index) .reduce(x, "Max", index)
#' @export
argmin_reduction <- function(x, index) .reduce(x, "ArgMin", index)
#' @export
argmax_reduction <- function(x, index) .reduce(x, "ArgMax", index)
#' @export
min_argmin <- function(x, index) .reduce(x, "Min_ArgMin", index)
#' @export
max_argmax <- function(x, index) .reduce(x, "Max_ArgMax", index)
#' @export
Kmin <- function(x, K, index) .reduce(x, "KMin", index, opt_arg = K)
#' @export
argKmin <- function(x, K, index) .reduce(x, "ArgKMin", index, opt_arg = K)
#' @export
Kmin_argKmin <- function(x, K, index) .reduce(x, "KMin_ArgKMin", index, opt_arg = K)
#' @export
logsumexp <- function(x, index, weight = NULL) .reduce(x, "LogSumExp", index, weight = weight)
#' @export
sumsoftmaxweight <- function(x, index, weight) .reduce(x, "SumSoftMaxWeight", index, weight = weight)

#' @export
min_argmin_reduction <- min_argmin
#' @export
max_argmax_reduction <- max_argmax
#' @export
Kmin_reduction <- Kmin
#' @export
argKmin_reduction <- argKmin
#' @export
Kmin_argKmin_reduction <- Kmin_argKmin
#' @export
logsumexp_reduction <- logsumexp
#' @export
sumsoftmaxweight_reduction <- sumsoftmaxweight

#' @export
reduction.LazyTensor <- function(x, opstr, index, opt_arg = NULL) {
  red <- switch(opstr, Sum = "Sum", LogSumExp = "LogSumExp", Min = "Min", Max = "Max",
                ArgMin = "ArgMin", ArgMax = "ArgMax", Min_ArgMin = "Min_ArgMin",
                Max_ArgMax = "Max_ArgMax", KMin = , Kmin = "KMin", ArgKMin = , argKmin = "ArgKMin",
                KMin_ArgKMin = , Kmin_argKmin = "KMin_ArgKMin",
                stop(sprintf("rkp: unknown reduction %s", sQuote(opstr, FALSE)), call. = FALSE))
  .reduce(x, red, index, opt_arg = opt_arg)
}

#' Matrix product with a symbolic matrix
#'
#' K %*% v = sum(K * Vj(v), index = "j") for a LazyTensor K of inner dimension
#' 1 and a vector or matrix v with one row per point j. Masks base::`%*%`,
#' which every other class still gets.
#' @export
`%*%` <- function(x, y) UseMethod("%*%")

#' @export
`%*%.default` <- function(x, y) base::`%*%`(x, y)

#' @export
`%*%.LazyTensor` <- function(x, y) {
  if (inherits(y, "LazyTensor"))
    stop("rkp: K %*% v takes an R vector or matrix v", call. = FALSE)
  if (x$dim != 1L)
    stop(sprintf("rkp: K %%*%% v needs a LazyTensor K of inner dimension 1, got %d", x$dim),
         call. = FALSE)
  sum(x * Vj(y), index = "j")
}

#' Gradient of a LazyTensor reduction
#'
#' grad(x, gradin, opstr, var, index): the gradient, with respect to the leaf
#' var, of <opstr reduction of x over index, gradin>.
#' @export
grad <- function(x, gradin, opstr = "Sum", var, index) {
  if (!inherits(var, "LazyTensor") || length(var$vars) != 1L || var$formula != names(var$vars))
    stop("rkp: 'var' must be a LazyTensor made by Vi(), Vj(), Pm() or LazyTensor()", call. = FALSE)
  id <- names(var$vars)
  if (!id %in% names(x$vars))
    stop("rkp: 'var' does not appear in 'x'", call. = FALSE)
  red <- switch(opstr, Sum = "Sum", LogSumExp = "LogSumExp", Min = "Min", Max = "Max",
                stop("rkp: grad() takes opstr Sum, LogSumExp, Min or Max", call. = FALSE))
  rc <- .reduction_call(x, red, index)
  info <- .info(rc$op)
  gop <- .derive(rc$op, 0L, match(id, names(rc$args)) - 1L)
  eta <- .as_input(gradin, "'gradin'")
  .run_grad(rc$op, info, gop, unname(rc$args), eta, 0L, "auto", rc$sizes)
}
