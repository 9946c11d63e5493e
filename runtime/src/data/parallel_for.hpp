// A loop over indices on a few threads, for work such as decoding images one by one.
#pragma once

#include <cstddef>
#include <functional>

namespace flatface {

// Calls body(i) for every i in [begin, end) on `threads` threads (the caller's among them), each
// taking the next index. After the first exception no new index starts; it is rethrown once all
// threads have stopped.
void parallel_for(std::size_t begin, std::size_t end, int threads,
                  const std::function<void(std::size_t)>& body);

}  // namespace flatface
