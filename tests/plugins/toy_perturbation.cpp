// One perturbation entry; the build names it (TOY_NAME) and may fake the ABI version, to make the
// duplicate-name and ABI-mismatch plugins of test_registry.
#include "flatface/plugin.hpp"
#include "toy_step.hpp"

#ifndef TOY_NAME
#define TOY_NAME "test-toy"
#endif

FLATFACE_PLUGIN(flatface::perturbation_entry(TOY_NAME, "plain SGD step (test plugin)",
                                             &flatface_test::make_toy_step))
