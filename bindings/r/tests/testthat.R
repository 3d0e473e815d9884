library(testthat)
library(rkp)

test_check("rkp")
