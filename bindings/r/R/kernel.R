# kernel.R: keops_kernel() and keops_grad(), the formula-text interface.

# Position of each alias, asked of libkp: the canonical text of the formula
# that names only it is "Sum_Reduction(Vi(k,d),1)" (declared aliases all count
# as arguments, so the argument count cannot tell).
.alias_positions <- function(args) {
  names <- sub("^\\s*([A-Za-z_][A-Za-z0-9_]*)\\s*=.*$", "\\1", args)
  pos <- vapply(names, function(nm) {
    op <- .parse(sprintf("Sum_Reduction(%s,1)", nm), args)
    as.integer(sub("^Sum_Reduction\\((Vi|Vj|Pm)\\(([0-9]+),.*$", "\\2", .info(op)$text))
  }, integer(1))
  stats::setNames(pos, names)
}

# The inputs of a call, in position order, as libkp reads them.
.prepare_input <- function(input, positions, nargs) {
  if (!is.list(input) || is.data.frame(input))
    stop("rkp: 'input' must be a list of the formula's arguments (matrices, vectors, numbers)",
         call. = FALSE)
  nms <- names(input)
  if (!is.null(nms) && any(nzchar(nms))) {
    if (!all(nzchar(nms)))
      stop("rkp: name every element of 'input' or none", call. = FALSE)
    unknown <- setdiff(nms, names(positions))
    if (length(unknown))
      stop(sprintf("rkp: 'input' names %s, which the formula's args do not declare",
                   paste(sQuote(unknown, FALSE), collapse = ", ")), call. = FALSE)
    ordered <- vector("list", nargs)
    for (nm in nms) ordered[[positions[[nm]] + 1L]] <- input[[nm]]
    input <- ordered
  }
  if (length(input) != nargs)
    stop(sprintf("rkp: the formula takes %d arguments, 'input' has %d",
                 nargs, length(input)), call. = FALSE)
  lapply(seq_along(input), function(k) {
    if (is.null(input[[k]])) return(NULL)
    .as_input(input[[k]], sprintf("input[[%d]]", k))
  })
}

.layout <- function(inner_dim) {
  if (!is.character(inner_dim) || length(inner_dim) != 1L || !inner_dim %in% c("col", "row"))
    stop("rkp: 'inner_dim' must be \"col\" (rows are points) or \"row\" (columns are points)",
         call. = FALSE)
  if (inner_dim == "row") 1L else 0L
}

#' Define a kernel reduction from a formula
#'
#' Same interface as rkeops 2.x keops_kernel(): nothing is compiled, the
#' formula is parsed by libkp at once (errors show here) and run on the CPU.
#' @export
keops_kernel <- function(formula, args, sum_scheme = "auto") {
  if (!is.character(sum_scheme) || length(sum_scheme) != 1L || !sum_scheme %in% names(.SCHEMES))
    stop("rkp: 'sum_scheme' must be one of ", paste(names(.SCHEMES), collapse = ", "),
         call. = FALSE)
  op <- .parse(formula, args)
  info <- .info(op)
  positions <- .alias_positions(args)
  fun <- function(input = NULL, inner_dim = "col") {
    if (is.null(input))
      return(list(formula = formula, args = args, reduction = info$reduction_name,
                  axis = info$axis, nargs = info$nargs, positions = positions,
                  sum_scheme = sum_scheme))
    layout <- .layout(inner_dim)
    input <- .prepare_input(input, positions, info$nargs)
    .format_result(.exec(op, input, layout, scheme = sum_scheme), info$reduction_name)
  }
  structure(fun, class = c("rkp_kernel", "function"),
            rkp = list(op = op, info = info, positions = positions, sum_scheme = sum_scheme))
}

#' @export
print.rkp_kernel <- function(x, ...) {
  a <- attr(x, "rkp")
  cat("rkp kernel: ", a$info$text, "\n", sep = "")
  cat("  arguments (by position): ",
      paste(names(sort(a$positions)), collapse = ", "), "\n", sep = "")
  invisible(x)
}

# Runs the gradient formula gop of the forward op on args (positions 1..n)
# and the output gradient eta, adding the forward results it takes.
.run_grad <- function(op, info, gop, args, eta, layout, scheme, sizes = c(-1, -1)) {
  n <- info$nargs
  gnargs <- .info(gop)$nargs
  extra <- list()
  red <- info$reduction_name
  if (gnargs > n + 1L) {
    if (!.reduction_has(red, "selects")) {  # LogSumExp, SumSoftMaxWeight: the output
      extra[[1]] <- .exec(op, args, layout, sizes, scheme)[[1]]
    } else {
      fwd <- .derive(op, 1L)
      extra[[1]] <- .exec(fwd, args, layout, sizes, scheme)[[2]]
    }
  }
  if (gnargs > n + 2L)
    extra[[2]] <- .exec(.derive(op, 2L), args, layout, sizes, scheme)[[1]]
  .exec(gop, c(args, list(eta), extra), layout, sizes, scheme)[[1]]
}

#' Gradient of a kernel reduction
#'
#' @export
keops_grad <- function(operator, var) {
  a <- attr(operator, "rkp")
  if (!inherits(operator, "rkp_kernel") || is.null(a))
    stop("rkp: 'operator' must be a function made by keops_kernel()", call. = FALSE)
  if (is.character(var) && length(var) == 1L) {
    if (!var %in% names(a$positions))
      stop(sprintf("rkp: 'var' = %s is not one of the formula's arguments (%s)",
                   sQuote(var, FALSE), paste(names(a$positions), collapse = ", ")), call. = FALSE)
    k <- a$positions[[var]]
  } else if (is.numeric(var) && length(var) == 1L && !is.na(var) && var == round(var) &&
             var >= 0 && var < a$info$nargs) {
    k <- as.integer(var)
  } else {
    stop(sprintf("rkp: 'var' must be an argument name or a 0-based position below %d",
                 a$info$nargs), call. = FALSE)
  }
  gop <- .derive(a$op, 0L, k)
  ginfo <- .info(gop)
  fun <- function(input = NULL, inner_dim = "col") {
    if (is.null(input))
      return(list(formula = ginfo$text, var = k, forward = a$info$text))
    layout <- .layout(inner_dim)
    if (!is.list(input) || length(input) != a$info$nargs + 1L)
      stop(sprintf("rkp: 'input' must be a list of the %d arguments of the forward formula and the output gradient 'eta' (last)",
                   a$info$nargs), call. = FALSE)
    eta <- .as_input(input[[length(input)]], "eta (the last input)")
    args <- .prepare_input(input[-length(input)], a$positions, a$info$nargs)
    .run_grad(a$op, a$info, gop, args, eta, layout, a$sum_scheme)
  }
  structure(fun, class = c("rkp_kernel", "function"),
            rkp = list(op = gop, info = ginfo, grad_of = a, var = k,
                       positions = c(a$positions, eta = a$info$nargs), sum_scheme = a$sum_scheme))
}
