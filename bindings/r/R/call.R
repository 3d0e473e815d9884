# call.R: the only place that calls the C glue; turns libkp failures into R
# conditions of class c("rkp_error_<status>", "rkp_error", "error", "condition").

# Reduction names in the order of kp.h's kp_reduction enum.
.REDUCTIONS <- c("Sum", "LogSumExp", "SumSoftMaxWeight", "Min", "Max", "ArgMin",
                 "ArgMax", "Min_ArgMin", "Max_ArgMax", "KMin", "ArgKMin",
                 "KMin_ArgKMin")

.check <- function(res, call = NULL) {
  if (!inherits(res, "rkp_failure")) return(res)
  kind <- tolower(sub("^KP_(ERR_)?", "", res$name))
  cond <- structure(
    class = c(paste0("rkp_error_", kind), "rkp_error", "error", "condition"),
    list(message = paste0("rkp: ", res$message), call = call,
         status = res$name))
  stop(cond)
}

.parse <- function(formula, args) {
  if (!is.character(formula) || length(formula) != 1L || is.na(formula))
    stop("rkp: 'formula' must be one character string", call. = FALSE)
  if (!is.character(args) || anyNA(args))
    stop("rkp: 'args' must be a character vector without NA", call. = FALSE)
  .check(.Call(rkp_parse, formula, args))
}

.info <- function(op) {
  info <- .Call(rkp_info, op)
  info$reduction_name <- .REDUCTIONS[info$reduction + 1L]
  info
}

.derive <- function(op, kind, k = 0L) {
  .check(.Call(rkp_derive, op, as.integer(kind), as.integer(k)))
}

.SCHEMES <- c(auto = -1L, block_sum = 0L, kahan_scheme = 1L, direct_sum = 2L)

# Runs op on a list of double vectors / matrices; list(values, index) with
# 0-based double indices. layout 0: rows are points, 1: columns are points.
.exec <- function(op, args, layout = 0L, sizes = c(-1, -1), scheme = "auto") {
  .check(.Call(rkp_exec, op, args, .dtype_code(), as.integer(layout),
               .rkp$threads, as.double(sizes), .SCHEMES[[scheme]]))
}

# 0-based double indices -> 1-based integers (doubles past .Machine$integer.max).
.one_based <- function(idx) {
  if (is.null(idx)) return(NULL)
  if (length(idx) && max(idx) >= .Machine$integer.max) return(idx + 1)
  storage.mode(idx) <- "integer"
  idx + 1L
}

# The user's result: values, 1-based indices, or both in a named list.
.format_result <- function(res, reduction) {
  switch(reduction,
         ArgMin = , ArgMax = , ArgKMin = .one_based(res[[2]]),
         Min_ArgMin = list(min = res[[1]], argmin = .one_based(res[[2]])),
         Max_ArgMax = list(max = res[[1]], argmax = .one_based(res[[2]])),
         KMin_ArgKMin = list(Kmin = res[[1]], argKmin = .one_based(res[[2]])),
         res[[1]])
}

# An R object as the double vector / matrix libkp reads; `what` names it.
.as_input <- function(x, what) {
  if (is.data.frame(x)) x <- as.matrix(x)
  if (is.double(x) && !is.object(x)) {
    if (!is.null(dim(x)) && length(dim(x)) > 2L)
      stop(sprintf("rkp: %s must be a vector or a matrix, got a %d-D array",
                   what, length(dim(x))), call. = FALSE)
    return(x)
  }
  if (is.integer(x) && !is.factor(x)) {
    storage.mode(x) <- "double"
    return(.as_input(x, what))
  }
  cls <- if (is.object(x)) class(x)[1L] else typeof(x)
  stop(sprintf("rkp: %s must be a numeric (double or integer) vector or matrix, got %s",
               what, cls), call. = FALSE)
}

# Seconds of each of `reps` kp_plan_exec calls of the keops_kernel operator
# `kernel` on C-held copies of `input` (row-major, or column-major as R holds
# them): the C call that bench/r/bench_r.R measures the binding against.
.c_exec_time <- function(kernel, input, reps = 1L, col_major = FALSE) {
  a <- attr(kernel, "rkp")
  input <- lapply(input, function(x) .as_input(x, "input"))
  .check(.Call(rkp_c_exec_time, a$op, input, .dtype_code(), as.integer(reps), .rkp$threads,
               isTRUE(col_major)))
}
