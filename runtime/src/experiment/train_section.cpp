#include "experiment/train_section.hpp"

namespace flatface {

const std::set<std::string> kRunNeutralTrainKeys{"eval_every_steps", "loader_threads",
                                                 "log_every_steps"};

TrainSettings parse_train(const Options& o) {
  TrainSettings t;
  t.epochs = o.get_int("epochs", t.epochs);
  t.batch_size = o.get_int("batch_size", t.batch_size);
  t.lr = o.get_double("lr", t.lr);
  t.momentum = o.get_double("momentum", t.momentum);
  t.weight_decay = o.get_double("weight_decay", t.weight_decay);
  t.decay_bn_and_bias = o.get_bool("decay_bn_and_bias", t.decay_bn_and_bias);
  t.milestones = o.get_ints("milestones", t.milestones);
  t.gamma = o.get_double("gamma", t.gamma);
  t.warmup_epochs = o.get_double("warmup_epochs", t.warmup_epochs);
  t.eval_every_steps = o.get_int("eval_every_steps", t.eval_every_steps);
  t.loader_threads = o.get_int("loader_threads", t.loader_threads);
  t.precision = o.get_choice("precision", t.precision, {"fp32", "bf16"});
  t.log_every_steps = o.get_int("log_every_steps", t.log_every_steps);
  t.flip = o.get_bool("flip", t.flip);
  auto positive = [&o](const char* key, double v) {
    if (!(v > 0)) throw ConfigError(o.pos_of(key).str() + ": train." + key + " must be positive");
  };
  positive("epochs", static_cast<double>(t.epochs));
  positive("batch_size", static_cast<double>(t.batch_size));
  positive("lr", t.lr);
  if (t.warmup_epochs < 0)
    throw ConfigError(o.pos_of("warmup_epochs").str() + ": train.warmup_epochs must be >= 0");
  return t;
}

}  // namespace flatface
