# options.R: computation settings of the package (precision, threads).

.rkp <- new.env(parent = emptyenv())
.rkp$precision <- "float64"
.rkp$threads <- 0L
.rkp$engine <- "cpu"
.rkp$next_id <- 0L

#' Settings of rkp computations
#'
#' @param precision "float64" (the default: R's own doubles, read in place)
#'   or "float32" (each argument converted once; faster, about 1e-6 relative
#'   accuracy for sums). NULL leaves it unchanged.
#' @param threads number of CPU threads; 0 means libkp's default (the
#'   KP_NUM_THREADS environment variable if set, else every core). NULL leaves
#'   it unchanged.
#' @return The previous settings, as a list, invisibly when something is set.
#' @export
rkp_options <- function(precision = NULL, threads = NULL, engine = NULL) {
  old <- list(precision = .rkp$precision, threads = .rkp$threads, engine = .rkp$engine)
  if (is.null(precision) && is.null(threads) && is.null(engine)) return(old)
  if (!is.null(precision)) {
    if (!is.character(precision) || length(precision) != 1L ||
        !precision %in% c("float32", "float64"))
      stop("rkp: 'precision' must be \"float32\" or \"float64\"", call. = FALSE)
  }
  if (!is.null(threads)) {
    if (!is.numeric(threads) || length(threads) != 1L || is.na(threads) ||
        threads < 0 || threads != round(threads) || threads > 4096)
      stop("rkp: 'threads' must be a whole number in [0, 4096]", call. = FALSE)
  }
  if (!is.null(engine)) {
    if (!is.character(engine) || length(engine) != 1L || !engine %in% .ENGINE_NAMES)
      stop("rkp: 'engine' must be one of ", paste(sprintf('"%s"', .ENGINE_NAMES), collapse = ", "),
           call. = FALSE)
    .check(.Call(rkp_set_engine, .engine_code(engine)))  # libkp refuses one that cannot run here
    .rkp$engine <- engine
  }
  if (!is.null(precision)) .rkp$precision <- precision
  if (!is.null(threads)) .rkp$threads <- as.integer(threads)
  invisible(old)
}

#' @rdname rkp_options
#' @export
rkeops_use_float32 <- function() invisible(rkp_options(precision = "float32"))

#' @rdname rkp_options
#' @export
rkeops_use_float64 <- function() invisible(rkp_options(precision = "float64"))

#' @rdname rkp_options
#' @param ncore number of threads (0: all cores).
#' @export
rkeops_use_cpu <- function(ncore = 0) invisible(rkp_options(threads = ncore, engine = "cpu"))

#' @rdname rkp_options
#' @export
rkeops_use_gpu <- function() invisible(rkp_options(engine = "cuda"))

# The engines by the names users pass; their kp_engine values are kp.h's
# (kp_constant("KP_ENGINE_OPENCL") for "opencl").
.ENGINE_NAMES <- c("cpu", "opencl", "cuda", "auto")
.engine_code <- function(engine) .kp_constant(paste0("KP_ENGINE_", toupper(engine)))

#' @rdname rkp_options
#' @export
rkp_engine_available <- function(engine) {
  if (!is.character(engine) || length(engine) != 1L || !engine %in% .ENGINE_NAMES)
    stop("rkp: 'engine' must be one of ", paste(.ENGINE_NAMES, collapse = ", "), call. = FALSE)
  res <- .Call(rkp_set_engine, -.engine_code(engine) - 1L)
  if (is.null(res)) return(TRUE)
  structure(FALSE, reason = res$message)
}

.dtype_code <- function() .kp_constant(if (identical(.rkp$precision, "float32")) "KP_FLOAT32" else "KP_FLOAT64")
