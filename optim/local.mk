# optim/: optimizer interface, SGD, MCMC.
