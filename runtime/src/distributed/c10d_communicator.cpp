#include "distributed/c10d_communicator.hpp"

#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>

#include <atomic>
#include <exception>
#include <map>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <tuple>

#include "distributed/distributed_compat.hpp"

namespace flatface::distributed {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kBeatPeriod{250};
// A rank whose heartbeat has not moved for this long (several periods) has stopped.
constexpr std::chrono::milliseconds kSilentAfter{2000};
constexpr std::size_t kBucketBytes = std::size_t{25} << 20;  // PyTorch DDP's default bucket

std::string beat_key(int rank) {
  return "flatface/beat/" + std::to_string(rank);
}

std::vector<std::uint8_t> bytes_of(const std::string& s) {
  return {s.begin(), s.end()};
}

bool loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

c10::intrusive_ptr<c10d::Store> connect_store(const LaunchEnv& env,
                                              std::chrono::milliseconds timeout, bool server) {
  c10d::TCPStoreOptions o;
  o.port = env.master_port;
  o.isServer = server;
  o.numWorkers = env.world_size;
  o.waitWorkers = false;  // the ranks meet in rendezvous(), where a missing one is named
  o.timeout = timeout;
  c10::intrusive_ptr<c10d::TCPStore> tcp;
  try {
    tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  } catch (const c10::Error& e) {
    const bool libuv_missing = std::string(e.what()).find("libuv") != std::string::npos;
    if (!libuv_missing || !store_without_libuv(o)) throw;
    tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  }
  return c10::make_intrusive<c10d::PrefixStore>(env.store_prefix + "flatface/", tcp);
}

}  // namespace

struct C10dCommunicator::Impl {
  c10::intrusive_ptr<c10d::Store> store;       // rendezvous, decisions, rank 0's server
  c10::intrusive_ptr<c10d::Store> beat_store;  // a connection of its own for the heartbeat thread
  c10::intrusive_ptr<CollectiveBackend> group;
  std::atomic<bool> stop{false};
  std::thread beat;
  int sequence = 0;  // numbers rendezvous keys
};

C10dCommunicator::C10dCommunicator(const LaunchEnv& env, const c10::Device& device,
                                   std::chrono::milliseconds timeout)
    : env_(env), timeout_(timeout), impl_(std::make_unique<Impl>()) {
  const bool server = env.rank == 0 && !env.agent_store;
  try {
    impl_->store = connect_store(env, timeout, server);
    impl_->beat_store = connect_store(env, timeout, false);
  } catch (const std::exception& e) {
    throw RankLostError("rank " + std::to_string(env.rank) + " of " +
                        std::to_string(env.world_size) + ": cannot reach the rendezvous store at " +
                        env.master_addr + ":" + std::to_string(env.master_port) + " (" +
                        (server ? "serving it" : "rank 0 serves it") + "): " + e.what());
  }
  impl_->beat = std::thread([this] {
    auto& s = *impl_->beat_store;
    while (!impl_->stop.load()) {
      try {
        s.add(beat_key(env_.rank), 1);
      } catch (const std::exception&) {
        return;  // the store is gone: the next collective or wait reports it
      }
      std::this_thread::sleep_for(kBeatPeriod);
    }
  });
  rendezvous("join");
  try {
    if (device.is_cuda()) {
#ifdef FLATFACE_HAVE_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl/", impl_->store), env.rank, env.world_size,
          o);
#else
      throw ConfigError(
          "this flatface was built against a libtorch without NCCL: data-parallel "
          "training on CUDA needs it (the CPU runs over Gloo)");
#endif
    } else {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      // All ranks on this machine: loopback; else the interface of this host's name.
      o->devices.push_back(loopback(env.master_addr)
                               ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                               : c10d::ProcessGroupGloo::createDefaultDevice());
      o->threads = 2;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(
          c10::make_intrusive<c10d::PrefixStore>("gloo/", impl_->store), env.rank, env.world_size,
          o);
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    lost("connecting the process group", e.what());
  }
}

C10dCommunicator::~C10dCommunicator() {
  // Rank 0 keeps serving the store until every other rank has said it leaves; a lost rank ends
  // the wait at the timeout, and nothing is thrown from here.
  try {
    // A lost rank, or this rank leaving on an error: the others learn it from the closed
    // connections and heartbeats; waiting for them here would only delay them.
    if (broken_ || std::uncaught_exceptions() > 0) throw RankLostError("not waiting");
    rendezvous("exit");
    if (env_.rank != 0) {
      impl_->store->set("left/" + std::to_string(env_.rank), bytes_of("1"));
    } else {
      std::vector<std::string> keys;
      for (int r = 1; r < env_.world_size; ++r) keys.push_back("left/" + std::to_string(r));
      impl_->store->wait(keys, std::chrono::milliseconds(5000));
    }
  } catch (const std::exception&) {
  }
  impl_->stop = true;
  if (impl_->beat.joinable()) impl_->beat.join();
  impl_->group.reset();
}

void C10dCommunicator::lost(const std::string& during, const std::string& detail) {
  broken_ = true;
  // Which ranks have stopped: their heartbeats do not move over a window of several periods.
  std::vector<int> silent;
  bool store_gone = false;
  try {
    std::vector<std::int64_t> before(static_cast<std::size_t>(env_.world_size));
    for (int r = 0; r < env_.world_size; ++r) before[r] = impl_->store->add(beat_key(r), 0);
    std::this_thread::sleep_for(kSilentAfter);
    for (int r = 0; r < env_.world_size; ++r)
      if (r != env_.rank && impl_->store->add(beat_key(r), 0) == before[r]) silent.push_back(r);
  } catch (const std::exception&) {
    store_gone = true;
  }
  std::string who;
  if (store_gone && !env_.agent_store) {
    who = "rank 0 (which serves the rendezvous store) was lost";
  } else if (store_gone) {
    who = "the launcher's store is gone";
  } else if (!silent.empty()) {
    who = silent.size() == 1 ? "rank " : "ranks ";
    for (std::size_t i = 0; i < silent.size(); ++i)
      who += (i ? ", " : "") + std::to_string(silent[i]);
    who += " of " + std::to_string(env_.world_size) + " lost (no heartbeat for " +
           std::to_string(kSilentAfter.count() / 1000) + " s)";
  } else {
    who = "another rank failed (all heartbeats go on)";
  }
  throw RankLostError("rank " + std::to_string(env_.rank) + ": " + who + ", during " + during +
                      ": " + detail);
}

void C10dCommunicator::all_reduce_sum(const std::vector<at::Tensor>& tensors) {
  const auto start = Clock::now();
  // Buckets of one dtype and device, in the order given (every rank forms the same buckets).
  std::vector<std::vector<at::Tensor>> buckets;
  std::map<std::tuple<int, std::string>, std::size_t> open;  // (dtype, device) -> bucket
  std::vector<std::size_t> bucket_bytes;
  for (const auto& t : tensors) {
    auto key = std::make_tuple(static_cast<int>(t.scalar_type()), t.device().str());
    auto it = open.find(key);
    const std::size_t bytes = static_cast<std::size_t>(t.numel()) * t.element_size();
    if (it == open.end() || bucket_bytes[it->second] + bytes > kBucketBytes) {
      buckets.emplace_back();
      bucket_bytes.push_back(0);
      it = open.insert_or_assign(key, buckets.size() - 1).first;
    }
    buckets[it->second].push_back(t);
    bucket_bytes[it->second] += bytes;
  }
  for (auto& bucket : buckets) {
    std::vector<at::Tensor> flat;
    if (bucket.size() == 1 && bucket[0].is_contiguous()) {
      flat = {bucket[0]};
    } else {
      std::vector<at::Tensor> views;
      for (const auto& t : bucket) views.push_back(t.reshape(-1));
      flat = {at::cat(views)};
    }
    try {
      impl_->group->allreduce(flat)->wait();
    } catch (const RankLostError&) {
      throw;
    } catch (const std::exception& e) {
      lost("an all-reduce", e.what());
    }
    if (flat[0].data_ptr() == bucket[0].data_ptr()) continue;
    std::int64_t at = 0;
    for (auto& t : bucket) {
      t.copy_(flat[0].narrow(0, at, t.numel()).view_as(t));
      at += t.numel();
    }
  }
  all_reduce_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
}

void C10dCommunicator::broadcast_from_rank0(const std::vector<at::Tensor>& tensors) {
  for (const auto& t : tensors) {
    std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    try {
      impl_->group->broadcast(one)->wait();
    } catch (const std::exception& e) {
      lost("a broadcast from rank 0", e.what());
    }
    if (one[0].data_ptr() != t.data_ptr()) t.copy_(one[0]);
  }
}

bool C10dCommunicator::any(bool flag) {
  std::vector<at::Tensor> v{at::full({1}, flag ? 1.0 : 0.0, at::kFloat)};
  all_reduce_sum(v);
  return v[0].item<float>() > 0;
}

void C10dCommunicator::publish(const std::string& key, const std::string& value) {
  try {
    impl_->store->set("published/" + key, bytes_of(value));
  } catch (const std::exception& e) {
    lost("publishing '" + key + "'", e.what());
  }
}

std::string C10dCommunicator::await(const std::string& key) {
  const std::string k = "published/" + key;
  std::int64_t last_beat = -1;
  auto last_move = Clock::now();
  for (;;) {
    try {
      if (impl_->store->check({k})) {
        auto v = impl_->store->get(k);
        return std::string(v.begin(), v.end());
      }
      const std::int64_t beat = impl_->store->add(beat_key(0), 0);
      if (beat != last_beat) last_beat = beat, last_move = Clock::now();
    } catch (const std::exception& e) {
      lost("waiting for rank 0 ('" + key + "')", e.what());
    }
    if (Clock::now() - last_move > std::max(timeout_, kSilentAfter))
      lost("waiting for rank 0 ('" + key + "')", "rank 0 stopped answering");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void C10dCommunicator::rendezvous(const std::string& name) {
  const std::string key = "rendezvous/" + name + "/" + std::to_string(impl_->sequence++);
  try {
    impl_->store->add(key, 1);
  } catch (const std::exception& e) {
    lost("rendezvous '" + name + "'", e.what());
  }
  const auto start = Clock::now();
  for (;;) {
    std::int64_t arrived = 0;
    try {
      arrived = impl_->store->add(key, 0);
    } catch (const std::exception& e) {
      lost("rendezvous '" + name + "'", e.what());
    }
    if (arrived >= env_.world_size) return;
    if (Clock::now() - start > timeout_) {
      lost("rendezvous '" + name + "'", std::to_string(arrived) + " of " +
                                            std::to_string(env_.world_size) + " ranks arrived in " +
                                            std::to_string(timeout_.count() / 1000) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace flatface::distributed
