// The plugin ABI version, in one place. Bump it whenever a public SDK header changes in a way that
// breaks binary compatibility (a virtual function, a struct layout, a factory signature).
#pragma once

// 4: the helpers (cosine head, step operations, image codec, format readers) became SDK headers.
// 5: StepStats says "not computed" with std::optional instead of NaN; dataset plugins claim
//    command-line paths (PathProbe, PathClaim), sets report details(), the host alone resizes
//    images (decode_all no longer takes a side); StepContext's share_first_gradient() and the
//    collectives (data-parallel training).
// 6: the collectives reach plugins through the objects they are given (HeadArgs::collectives,
//    StepContext::collectives()), no longer through the free functions run_world_size() and
//    all_reduce_sum().
//    Dataset plugins recognise command-line paths (a grid worker claims runs): PathClaim became
//    PathRecognition, ClaimFunction RecogniseFunction, PluginEntry::claim PluginEntry::recognise.
// 7: heads get a per-step hook (MarginHead::begin_step(HeadStep)), their own loss term
//    (MarginHead::regularizer, StepContext::regularizer, margin_loss(ctx, logits)) and the run's
//    seed (HeadArgs::seed).
// 8: a backbone carries its InputFormat (channel order and normalisation), which the host sets.
#define FLATFACE_ABI_VERSION 8
#define FLATFACE_VERSION_STRING "0.1.0"
