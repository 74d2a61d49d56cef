# layers/: one layer kind per file, the kernels they share, and the sequential model.
libnecklace_a_SOURCES += layers/layer.h layers/layer.c layers/gemm.h layers/gemm.c \
	layers/conv2d.c layers/linear.c layers/relu.c layers/pool.c layers/flatten.c \
	layers/batchnorm.c \
	layers/xent.h layers/xent.c layers/model.h layers/model.c

if HAVE_CRITERION
check_PROGRAMS += tests/test_layers tests/test_model
endif
tests_test_layers_SOURCES = tests/test_layers.c
tests_test_layers_LDADD = $(TEST_LIBS)
tests_test_model_SOURCES = tests/test_model.c
tests_test_model_LDADD = $(TEST_LIBS)
