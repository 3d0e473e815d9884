#!/usr/bin/env Rscript
# knn_classifier.R: a K-nearest-neighbours classifier with rkp's argKmin
# (1-based indices, as R indexes), on three noisy 2D spirals.
#
# Usage: Rscript knn_classifier.R [N_train] [N_test] [K]   (default 50000 10000 10)
#        Rscript knn_classifier.R --help
args <- commandArgs(trailingOnly = TRUE)
if (length(args) && args[1] %in% c("-h", "--help")) {
  cat("Usage: Rscript knn_classifier.R [N_train] [N_test] [K]\n",
      "K-NN classification of three 2D spirals with rkp::argKmin; prints the accuracy\n",
      "and checks 200 test points against a brute-force search in R.\n", sep = "")
  quit(status = 0)
}
suppressPackageStartupMessages(library(rkp))
n_train <- if (length(args) >= 1) as.integer(args[1]) else 50000L
n_test <- if (length(args) >= 2) as.integer(args[2]) else 10000L
K <- if (length(args) >= 3) as.integer(args[3]) else 10L

spirals <- function(n) {
  cls <- sample(3L, n, replace = TRUE)
  r <- runif(n)
  angle <- 4 * r + 2 * pi * cls / 3
  x <- cbind(r * cos(angle), r * sin(angle)) + matrix(rnorm(2 * n, sd = 0.04), n)
  list(x = x, cls = cls)
}
set.seed(1)
train <- spirals(n_train)
test <- spirals(n_test)

cat(sprintf("%d training points, %d test points, K = %d\n", n_train, n_test, K))
t <- system.time({
  D_ij <- sqnorm2(Vi(test$x) - Vj(train$x))     # symbolic n_test x n_train distances
  nn <- argKmin(D_ij, K, index = "j")            # n_test x K, 1-based row numbers of train$x
})[["elapsed"]]
votes <- matrix(train$cls[nn], nrow(nn))         # classes of the neighbours
pred <- apply(votes, 1, function(v) which.max(tabulate(v, 3L)))
cat(sprintf("argKmin: %.2f s; accuracy %.3f\n", t, mean(pred == test$cls)))

# Brute force on a few test points: the same neighbours (as sets; ties aside).
check <- sample(n_test, 200)
same <- vapply(check, function(i) {
  d <- colSums((t(train$x) - test$x[i, ])^2)
  setequal(order(d)[1:K], nn[i, ])
}, logical(1))
cat(sprintf("brute-force agreement on 200 test points: %d / 200\n", sum(same)))
stopifnot(mean(same) >= 0.99, mean(pred == test$cls) > 0.9)
