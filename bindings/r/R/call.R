# call.R: the only place that calls the C glue; turns libkp failures into R
# conditions of class c("rkp_error_<status>", "rkp_error", "error", "condition").

# Facts of kp.h, asked of libkp (never copied here): the reductions with what
# they take and give (kp_reduction_name, kp_reduction_flags), constants
# (kp_constant). Asked on first use and kept: they cannot change in a session.
.kp <- new.env(parent = emptyenv())

# list(name, takes_k, takes_g, values, indices, selects), one element per
# kp_reduction value.
.reductions <- function() {
  if (is.null(.kp$reductions)) .kp$reductions <- .Call(rkp_reductions)
  .kp$reductions
}

# A flag of kp.h for the reduction called `name` ("takes_k", "selects", ...).
.reduction_has <- function(name, flag) {
  r <- .reductions()
  k <- match(name, r$name)
  if (is.na(k)) stop(sprintf("rkp: unknown reduction %s; libkp's reductions: %s", sQuote(name, FALSE),
                             paste(r$name, collapse = ", ")), call. = FALSE)
  r[[flag]][[k]]
}

# The value of a kp.h constant ("KP_FLOAT32", "KP_ENGINE_OPENCL", ...).
.kp_constant <- function(name) {
  v <- .kp[[name]]
  if (is.null(v)) {
    v <- .Call(rkp_constant, name)
    if (is.na(v)) stop(sprintf("rkp: libkp has no constant %s", name), call. = FALSE)
    assign(name, v, envir = .kp)
  }
  v
}

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
  info$reduction_name <- .reductions()$name[info$reduction + 1L]
  info
}

.derive <- function(op, kind, k = 0L) {
  .check(.Call(rkp_derive, op, as.integer(kind), as.integer(k)))
}

# Summation schemes by rkeops' names: kp_sum_scheme values of kp.h ("auto":
# the context's own, -1); "exact_sum" is libkp's own (KP_SUM_EXACT).
.SCHEMES <- c(auto = NA, block_sum = "KP_SUM_BLOCK", kahan_scheme = "KP_SUM_KAHAN",
              direct_sum = "KP_SUM_PLAIN", exact_sum = "KP_SUM_EXACT")
.scheme_code <- function(scheme) {
  if (is.na(.SCHEMES[[scheme]])) -1L else .kp_constant(.SCHEMES[[scheme]])
}

# Runs op on a list of double vectors / matrices; list(values, index) with
# 0-based double indices. layout 0: rows are points, 1: columns are points.
.exec <- function(op, args, layout = 0L, sizes = c(-1, -1), scheme = "auto") {
  .check(.Call(rkp_exec, op, args, .dtype_code(), as.integer(layout),
               .rkp$threads, as.double(sizes), .scheme_code(scheme)))
}

# 0-based double indices -> 1-based integers (doubles past .Machine$integer.max).
.one_based <- function(idx) {
  if (is.null(idx)) return(NULL)
  if (length(idx) && max(idx) >= .Machine$integer.max) return(idx + 1)
  storage.mode(idx) <- "integer"
  idx + 1L
}

# The user's result, from what kp.h says the reduction writes: values,
# 1-based indices, or both in a named list (rkeops' names: min and argmin,
# Kmin and argKmin, ...).
.format_result <- function(res, reduction) {
  values <- .reduction_has(reduction, "values")
  indices <- .reduction_has(reduction, "indices")
  if (!indices) return(res[[1]])
  if (!values) return(.one_based(res[[2]]))
  what <- sub("(Min|Max)$", "\\L\\1", strsplit(reduction, "_", fixed = TRUE)[[1]][1], perl = TRUE)
  out <- list(res[[1]], .one_based(res[[2]]))
  names(out) <- c(what, paste0("arg", what))
  out
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
