# lazytensor.R: LazyTensor, Vi, Vj, Pm and their symbolic arithmetic.
#
# A LazyTensor is the text of a libkp formula over named leaves ("v12") and
# the R data behind them. Each new expression is checked by libkp at once: the
# formula is parsed as a reduction and kp.h's output width becomes the
# LazyTensor's inner dimension (so dimension errors come from libkp, with its
# message, when the expression is written, not when it is reduced).

.new_id <- function() {
  .rkp$next_id <- .rkp$next_id + 1L
  .rkp$next_id
}

.CATS <- c("Vi", "Vj", "Pm")

# Aliases "v12 = Vi(3)" of the leaves, in list order (their positions).
.aliases <- function(vars) {
  vapply(names(vars), function(id) {
    v <- vars[[id]]
    sprintf("%s = %s(%d)", id, .CATS[v$cat + 1L], v$dim)
  }, character(1), USE.NAMES = FALSE)
}

.lt <- function(formula, vars, ni = NA_integer_, nj = NA_integer_) {
  op <- .parse(sprintf("Sum_Reduction(%s,1)", formula), .aliases(vars))
  structure(list(formula = formula, vars = vars, dim = .info(op)$out_dim, ni = ni, nj = nj),
            class = "LazyTensor")
}

.leaf <- function(x, cat) {
  id <- paste0("v", .new_id())
  n <- if (cat == 2L) NA_integer_ else NROW(x)
  d <- if (cat == 2L) length(x) else NCOL(x)
  vars <- list()
  vars[[id]] <- list(x = x, cat = cat, dim = d)
  .lt(id, vars, ni = if (cat == 0L) n else NA_integer_, nj = if (cat == 1L) n else NA_integer_)
}

# A number as a LazyTensor: an exact integer constant when it is one, else a
# parameter (one formula then serves every value).
.const <- function(x) {
  if (length(x) == 1L && is.finite(x) && x == round(x) && abs(x) < 2^31) {
    v <- as.integer(x)
    txt <- if (v < 0L) sprintf("(-IntCst(%d))", -v) else sprintf("IntCst(%d)", v)
    return(.lt(txt, list()))
  }
  .leaf(.as_input(as.vector(x), "a number in a LazyTensor expression"), 2L)
}

#' Symbolic tensors
#'
#' LazyTensor(x, "i") (or Vi(x)): the rows of matrix x are points x_i indexed
#' by i; LazyTensor(x, "j") (or Vj(x)): points y_j; LazyTensor(x) (or Pm(x)) for
#' a vector or number: a parameter shared by every pair (i, j).
#' @export
LazyTensor <- function(x, index = NA) {
  if (inherits(x, "LazyTensor")) stop("rkp: 'x' is already a LazyTensor", call. = FALSE)
  if (length(index) != 1L || !(is.na(index) || index %in% c("i", "j")))
    stop("rkp: 'index' must be \"i\", \"j\" or NA (a parameter)", call. = FALSE)
  if (is.na(index)) {
    x <- .as_input(x, "'x'")
    # a matrix parameter is stored row by row, as KeOps' matrix ops read it
    return(.leaf(if (is.matrix(x)) as.vector(t(x)) else as.vector(x), 2L))
  }
  x <- .as_input(x, "'x'")
  if (is.null(dim(x))) x <- matrix(x, ncol = 1L)
  .leaf(x, if (index == "i") 0L else 1L)
}

#' @rdname LazyTensor
#' @export
Vi <- function(x) LazyTensor(x, "i")

#' @rdname LazyTensor
#' @export
Vj <- function(x) LazyTensor(x, "j")

#' @rdname LazyTensor
#' @export
Pm <- function(x) LazyTensor(x, NA)

#' @export
is.LazyTensor <- function(x) inherits(x, "LazyTensor")

.as_lt <- function(x) {
  if (inherits(x, "LazyTensor")) return(x)
  if (is.numeric(x) && is.null(dim(x))) return(.const(x))
  stop("rkp: LazyTensor expressions combine LazyTensors and numbers; wrap a matrix with Vi() or Vj() first",
       call. = FALSE)
}

.merge_n <- function(a, b, what) {
  if (is.na(a)) return(b)
  if (is.na(b) || a == b) return(a)
  stop(sprintf("rkp: LazyTensors with %d and %d points indexed by %s", a, b, what), call. = FALSE)
}

# New LazyTensor from a format with one %s per operand (LazyTensors or numbers).
.combine <- function(fmt, ...) {
  ops <- lapply(list(...), .as_lt)
  vars <- list()
  ni <- nj <- NA_integer_
  for (o in ops) {
    vars[names(o$vars)] <- o$vars
    ni <- .merge_n(ni, o$ni, "i")
    nj <- .merge_n(nj, o$nj, "j")
  }
  texts <- lapply(ops, `[[`, "formula")
  .lt(do.call(sprintf, c(list(fmt), texts)), vars, ni, nj)
}

.ARITH <- c(`+` = "(%s+%s)", `-` = "(%s-%s)", `*` = "(%s*%s)", `/` = "(%s/%s)",
            `|` = "(%s|%s)", `==` = "(%s==%s)", `!=` = "(%s!=%s)", `<` = "(%s<%s)",
            `>` = "(%s>%s)", `<=` = "(%s<=%s)", `>=` = "(%s>=%s)")

.power <- function(x, p) {
  if (is.numeric(p) && length(p) == 1L && is.null(dim(p))) {
    if (p == 2) return(.combine("Square(%s)", x))
    if (p == 0.5) return(.combine("Sqrt(%s)", x))
    if (p == -0.5) return(.combine("Rsqrt(%s)", x))
    if (p == round(p) && abs(p) < 2^31) return(.combine(sprintf("Pow(%%s,%d)", as.integer(p)), x))
  }
  .combine("Powf(%s,%s)", x, p)
}

#' @export
Ops.LazyTensor <- function(e1, e2) {
  if (missing(e2)) {
    if (.Generic == "-") return(.combine("(-%s)", e1))
    if (.Generic == "+") return(e1)
    stop(sprintf("rkp: unary %s is not defined for a LazyTensor", .Generic), call. = FALSE)
  }
  if (.Generic == "^") return(.power(e1, e2))
  fmt <- .ARITH[.Generic]
  if (is.na(fmt))
    stop(sprintf("rkp: operator %s is not defined for LazyTensors", .Generic), call. = FALSE)
  .combine(fmt, e1, e2)
}

.MATH <- c(exp = "Exp", log = "Log", sqrt = "Sqrt", abs = "Abs", sin = "Sin",
           cos = "Cos", asin = "Asin", acos = "Acos", atan = "Atan", tanh = "Tanh",
           sign = "Sign", floor = "Floor")

#' @export
Math.LazyTensor <- function(x, ...) {
  if (.Generic == "tan") return(sin(x) / cos(x))
  if (.Generic == "round") {
    digits <- if (...length()) ..1 else 0L
    return(.combine(sprintf("Round(%%s,%d)", .whole(digits, "digits", -99L)), x))
  }
  f <- .MATH[.Generic]
  if (is.na(f))
    stop(sprintf("rkp: %s() is not defined for a LazyTensor", .Generic), call. = FALSE)
  .combine(paste0(f, "(%s)"), x)
}

#' @export
print.LazyTensor <- function(x, ...) {
  n <- function(v) if (is.na(v)) "-" else format(v)
  cat(sprintf("LazyTensor: %s\n  inner dimension %d; %s points i, %s points j\n",
              x$formula, x$dim, n(x$ni), n(x$nj)))
  invisible(x)
}

#' @export
t.LazyTensor <- function(x) {
  vars <- lapply(x$vars, function(v) {
    if (v$cat < 2L) v$cat <- 1L - v$cat
    v
  })
  .lt(x$formula, vars, x$nj, x$ni)
}

# Functions that are not base generics: defined here, with a default method
# where base R or stats has a function of that name.
.fn1 <- function(name) function(x) .combine(paste0(name, "(%s)"), x)

#' Symbolic operations on LazyTensors
#' @export
square <- .fn1("Square")
#' @export
rsqrt <- .fn1("Rsqrt")
#' @export
inv <- .fn1("Inv")
#' @export
relu <- .fn1("ReLU")
#' @export
xlogx <- .fn1("XLogX")
#' @export
sinxdivx <- .fn1("SinXDivX")
#' @export
sqnorm2 <- .fn1("SqNorm2")
#' @export
norm2 <- .fn1("Norm2")
#' @export
normalize <- .fn1("Normalize")
#' @export
sqdist <- function(x, y) .combine("SqDist(%s,%s)", x, y)
#' @export
weightedsqnorm <- function(x, s) .combine("WeightedSqNorm(%s,%s)", s, x)
#' @export
weightedsqdist <- function(x, y, s) .combine("WeightedSqDist(%s,%s,%s)", s, x, y)
#' @export
clamp <- function(x, a, b) .combine("Clamp(%s,%s,%s)", x, a, b)
#' @export
concat <- function(x, y) .combine("Concat(%s,%s)", x, y)
#' @export
tensorprod <- function(x, y) .combine("TensorProd(%s,%s)", x, y)
#' @export
matvecmult <- function(m, v) .combine("MatVecMult(%s,%s)", m, v)
#' @export
vecmatmult <- function(v, m) .combine("VecMatMult(%s,%s)", v, m)

.whole <- function(v, what, lower = 1) {
  if (!is.numeric(v) || length(v) != 1L || is.na(v) || v != round(v) || v < lower)
    stop(sprintf("rkp: '%s' must be a whole number >= %d", what, lower), call. = FALSE)
  as.integer(v)
}

#' @export
one_hot <- function(x, D) .combine(sprintf("OneHot(%%s,%d)", .whole(D, "D")), x)

# Components are numbered from 1, as R numbers vector elements.
#' @export
elem <- function(x, m) .combine(sprintf("Elem(%%s,%d)", .whole(m, "m") - 1L), x)
#' @export
extract <- function(x, m, d) {
  .combine(sprintf("Extract(%%s,%d,%d)", .whole(m, "m") - 1L, .whole(d, "d")), x)
}

#' @export
step <- function(object, ...) UseMethod("step")
#' @export
step.default <- function(object, ...) stats::step(object, ...)
#' @export
step.LazyTensor <- function(object, ...) .combine("Step(%s)", object)

#' @export
mod <- function(x, modulus, offset = 0) .combine("Mod(%s,%s,%s)", x, modulus, offset)

# ifelse(test, yes, no) would mask base::ifelse for every R object; the
# element-wise choice is named after libkp's op instead.
#' @export
ifelse_lt <- function(test, yes, no) .combine("IfElse(%s,%s,%s)", test, yes, no)
