# stages/: the stage runtime: trainer (model + optimizer + logs), wire, links, stage loop.
libnecklace_a_SOURCES += stages/trainer.h stages/trainer.c
