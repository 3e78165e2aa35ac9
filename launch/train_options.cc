#include "launch/train_options.h"

#include <boost/program_options.hpp>
#include <fstream>
#include <iostream>
#include <vector>

#include "core/buffer.h"
#include "optim/orthoadam.h"

namespace om {
namespace po = boost::program_options;
namespace {

// Megatron's long names for flags we spell shorter (DESIGN.md "Programs").
struct Alias {
  const char* megatron;
  const char* ours;
};
constexpr Alias kAliases[] = {
    {"tensor-model-parallel-size", "tp"},
    {"data-parallel-size", "dp"},
};

std::string canonical(const std::string& key) {
  for (const Alias& a : kAliases)
    if (key == a.megatron) return a.ours;
  return key;
}

po::options_description make_options(TrainOptions* o, std::string* config_file) {
  po::options_description model("Model");
  model.add_options()
      ("model", po::value(&o->model)->default_value(o->model),
       "preset: tiny, small (CPU); llama-60m, llama-130m, llama-350m, llama-1b")
      ("attention", po::value(&o->attention)->default_value(o->attention), "softmax | softmax1")
      ("norm", po::value(&o->norm)->default_value(o->norm), "rmsnorm | rmsnorm-s (one shared gain)")
      ("vocab-size", po::value(&o->vocab_size)->default_value(o->vocab_size),
       "tokenizer vocabulary; 0 = from the dataset's metadata (PREFIX.json)")
      ("seq-length", po::value(&o->seq_length)->default_value(o->seq_length), "tokens per sequence; 0 = preset's");
  po::options_description parallel("Parallelism");
  parallel.add_options()
      ("tp", po::value(&o->tp)->default_value(o->tp),
       "tensor-parallel size (alias --tensor-model-parallel-size)")
      ("dp", po::value(&o->dp)->default_value(o->dp), "data-parallel size (alias --data-parallel-size)")
      ("overlap-grad-reduce", po::bool_switch(&o->overlap_grad_reduce),
       "dp > 1: reduce-scatter the gradients bucket by bucket while the step's last backward still runs (on "
       "CUDA, a stream of their own), instead of all at once after it; the same update")
      ("ddp-bucket-size", po::value(&o->ddp_bucket_size)->default_value(o->ddp_bucket_size),
       "elements per gradient bucket with --overlap-grad-reduce (whole parameters, from the LM head down)");
  po::options_description batch("Batch and schedule");
  batch.add_options()
      ("micro-batch-size", po::value(&o->micro_batch_size)->default_value(o->micro_batch_size),
       "sequences per micro-batch per data-parallel rank")
      ("global-batch-size", po::value(&o->global_batch_size)->default_value(o->global_batch_size),
       "sequences per optimizer step (micro-batch x accumulation x dp); 0 = micro-batch x dp")
      ("train-iters", po::value(&o->train_iters)->default_value(o->train_iters), "optimizer steps")
      ("lr", po::value(&o->lr)->default_value(o->lr), "peak learning rate")
      ("min-lr", po::value(&o->min_lr)->default_value(o->min_lr), "learning rate at the end of the cosine decay")
      ("lr-warmup-iters", po::value(&o->lr_warmup_iters)->default_value(o->lr_warmup_iters),
       "linear warm-up steps")
      ("lr-decay-iters", po::value(&o->lr_decay_iters)->default_value(o->lr_decay_iters),
       "steps of warm-up + cosine decay; 0 = --train-iters");
  po::options_description optim("Optimizer");
  optim.add_options()
      ("optimizer", po::value(&o->optimizer)->default_value(o->optimizer),
       "adamw | orthoadam (Adam in a fixed random orthogonal basis per optimizer unit)")
      ("ortho-block", po::value(&o->ortho_block)->default_value(o->ortho_block),
       "B: optimizer units are <= B rows of a parameter (ZeRO shards whole units); OrthoAdam's column "
       "blocks are <= B wide")
      ("ortho-transform", po::value(&o->ortho_transform)->default_value(o->ortho_transform),
       "OrthoAdam's rotations: haar | identity (= AdamW) | signed-permutation (= AdamW up to rounding)")
      ("ortho-precision", po::value(&o->ortho_precision)->default_value(o->ortho_precision),
       "OrthoAdam's rotation GEMMs: fp32 | tf32 (CUDA: TF32 tensor cores, ~7x the fp32 rate on an H100/H200, "
       "operands rounded to 10 fraction bits; moments stay fp32)")
      ("clip-grad", po::value(&o->clip_grad)->default_value(o->clip_grad), "max global gradient norm; 0 = off")
      ("weight-decay", po::value(&o->weight_decay)->default_value(o->weight_decay),
       "decoupled weight decay (matrices only, not norm gains)")
      ("adam-beta1", po::value(&o->adam_beta1)->default_value(o->adam_beta1), "Adam beta1")
      ("adam-beta2", po::value(&o->adam_beta2)->default_value(o->adam_beta2), "Adam beta2")
      ("adam-eps", po::value(&o->adam_eps)->default_value(o->adam_eps), "Adam epsilon")
      ("seed", po::value(&o->seed)->default_value(o->seed), "seed of initialisation and data order");
  po::options_description data("Data");
  data.add_options()
      ("data-path", po::value(&o->data_path), "prefix of the training set (PREFIX.bin/.idx/.json from ortho_data)")
      ("valid-data-path", po::value(&o->valid_data_path), "prefix of the held-out set for validation loss")
      ("bos", po::bool_switch(&o->bos),
       "start every sequence with the tokenizer's <s>, then T tokens of the stream (a fixed first token, as "
       "Llama's tokenizer gives every document; where first-token attention forms: PAPER.md)")
      ("eval-interval", po::value(&o->eval_interval)->default_value(o->eval_interval),
       "validation every N steps (also after the last); 0 = only after the last")
      ("eval-iters", po::value(&o->eval_iters)->default_value(o->eval_iters), "global batches per validation")
      ("eval-metrics", po::bool_switch(&o->eval_metrics),
       "with validation, also first-token attention, kurtosis and max activation (metrics.jsonl)");
  po::options_description out("Logging and output");
  out.add_options()
      ("log-interval", po::value(&o->log_interval)->default_value(o->log_interval), "log every N steps")
      ("profile-steps", po::value(&o->profile_steps)->default_value(o->profile_steps),
       "time every op of N steps after the first and log a table (device time, TFLOP/s, GB/s per op, and the "
       "step's time outside ops); also profile.txt next to metrics.jsonl; 0 = off")
      ("save", po::value(&o->save), "run directory: checkpoints (step_*/, latest) and metrics.jsonl")
      ("save-interval", po::value(&o->save_interval)->default_value(o->save_interval),
       "checkpoint every N steps (and after the last step); 0 = after the last step only")
      ("save-keep", po::value(&o->save_keep)->default_value(o->save_keep), "keep the newest K checkpoints; 0 = all")
      ("load", po::value(&o->load),
       "resume from a run directory (its `latest` checkpoint) or a step_* directory; any tp/dp layout")
      ("no-load-optim", po::bool_switch(&o->no_load_optim), "load the weights only (fresh Adam moments and step)")
      ("no-load-rng", po::bool_switch(&o->no_load_rng), "keep this run's --seed for the data order")
      ("exit-duration-in-mins", po::value(&o->exit_duration_in_mins)->default_value(o->exit_duration_in_mins),
       "save a checkpoint and exit with code 75 after this many minutes; 0 = off (SIGTERM/SIGUSR1 do the same)")
      ("log-dir", po::value(&o->log_dir), "directory for metrics.jsonl (when --save is not given)")
      ("peak-tflops", po::value(&o->peak_tflops)->default_value(o->peak_tflops),
       "device peak for MFU in TFLOP/s; 0 = the built-in figure for the device");
  po::options_description faults("Faults");
  faults.add_options()
      ("nan-policy", po::value(&o->nan_policy)->default_value(o->nan_policy),
       "abort: stop at a non-finite loss or gradient norm (naming step and ranks); skip: drop that step's "
       "update and go on (counted as skipped_steps in metrics.jsonl)")
      ("comm-timeout-s", po::value(&o->comm_timeout_s)->default_value(o->comm_timeout_s),
       "abort the job (exit 3) when a collective has not finished, or a rank has not communicated during a step, "
       "for this many seconds; every rank prints its last collective; 0 = off")
      ("inject-fault", po::value(&o->inject_fault),
       "testing: nan@STEP[:RANK] or hang@STEP[:RANK] (NaN loss and gradient, or a rank that sleeps in that step)");
  po::options_description runtime("Runtime");
  runtime.add_options()
      ("device", po::value(&o->device)->default_value("auto"),
       "cpu | cuda (one GPU per rank: the rank's index on its node) | auto: cuda when a GPU is visible")
      ("dtype", po::value(&o->dtype)->default_value(o->dtype),
       "f32 | bf16 (CUDA: bf16 weights and activations, f32 gradients and master weights) | auto: bf16 on CUDA, "
       "f32 on the CPU")
      ("threads", po::value(&o->threads)->default_value(o->threads), "OpenMP threads; 0 = OMP_NUM_THREADS or all")
      ("cuda-graphs", po::bool_switch(&o->cuda_graphs),
       "CUDA: replay each micro-batch's forward and backward (tp collectives included) from a CUDA graph "
       "(one launch instead of hundreds; the same results bit for bit); the first micro-batch of each size "
       "runs eagerly, the second is captured")
      ("dry-run", po::bool_switch(&o->dry_run),
       "check the flags and the tp x dp layout, print each rank's memory plan for --device, and exit without "
       "allocating (runs without mpirun)")
      ("config", po::value(config_file), "read flags from FILE (lines `name = value`; the command line wins)")
      ("help,h", "show this help");
  po::options_description all("ortho_megatron: train a Llama model\n\nUsage: ortho_megatron --data-path PREFIX "
                              "[flags]   (or mpirun -np N ortho_megatron ...)");
  all.add(model).add(parallel).add(batch).add(optim).add(data).add(out).add(faults).add(runtime);
  return all;
}

// The command line with Megatron aliases renamed: "--tensor-model-parallel-size 2" and
// "--tensor-model-parallel-size=2" both become our flag.
std::vector<std::string> canonical_args(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      const size_t eq = a.find('=');
      const std::string key = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      a = "--" + canonical(key) + (eq == std::string::npos ? "" : a.substr(eq));
    }
    args.push_back(a);
  }
  return args;
}

// Renames Megatron aliases to our names in a config file's options, and turns what is left unrecognised
// into an error naming the flag.
Status canonicalise(po::parsed_options* parsed, const std::string& path) {
  for (po::option& opt : parsed->options) {
    if (!opt.unregistered) continue;
    const std::string key = canonical(opt.string_key);
    if (key == opt.string_key) {
      return Status::InvalidArgument("unknown flag '" + opt.string_key + "' in --config '" + path +
                                     "'; run ortho_megatron --help for the list");
    }
    opt.string_key = key;
    opt.unregistered = false;
  }
  return Status::Ok();
}

}  // namespace

Status validate_train_options(const TrainOptions& o, int world_size) {
  auto bad = [](const std::string& m) { return Status::InvalidArgument(m); };
  if (o.data_path.empty())
    return bad("--data-path is required: the prefix of a dataset made by `ortho_data preprocess` "
               "(e.g. --data-path data/moby_train)");
  if (o.tp < 1 || o.dp < 1) return bad(format_message("--tp (%ld) and --dp (%ld) must be >= 1", o.tp, o.dp));
  if (o.tp * o.dp != world_size && !o.dry_run)
    return bad(format_message("--tp (%ld) * --dp (%ld) = %ld but the job has %d rank(s); launch with mpirun -np %ld "
                              "or change --tp/--dp",
                              o.tp, o.dp, o.tp * o.dp, world_size, o.tp * o.dp));
  if (o.micro_batch_size < 1) return bad(format_message("--micro-batch-size must be >= 1, got %ld", o.micro_batch_size));
  if (o.global_batch_size < 0) return bad("--global-batch-size must be >= 0 (0 = micro-batch x dp)");
  const int64_t per_step = o.micro_batch_size * o.dp;
  if (o.global_batch_size % per_step != 0)
    return bad(format_message("--global-batch-size (%ld) must be a multiple of --micro-batch-size (%ld) x --dp (%ld) "
                              "= %ld",
                              o.global_batch_size, o.micro_batch_size, o.dp, per_step));
  if (o.train_iters < 1) return bad(format_message("--train-iters must be >= 1, got %ld", o.train_iters));
  OM_RETURN_IF_ERROR(parse_optimizer_kind(o.optimizer).status());
  OM_RETURN_IF_ERROR(parse_ortho_transform(o.ortho_transform).status());
  if (o.ortho_block < 1)
    return bad(format_message("--ortho-block must be >= 1, got %ld (default %ld)", o.ortho_block, kDefaultOrthoBlock));
  if (o.ortho_precision != "fp32" && o.ortho_precision != "tf32")
    return bad("--ortho-precision '" + o.ortho_precision + "': use fp32 or tf32");
  if (o.ortho_precision == "tf32" && o.optimizer != "orthoadam")
    return bad("--ortho-precision tf32 sets OrthoAdam's rotations; it needs --optimizer orthoadam");
  if (o.ortho_precision == "tf32" && o.device == "cpu")
    return bad("--ortho-precision tf32 runs on CUDA tensor cores; use fp32 with --device cpu");
  if (o.clip_grad < 0) return bad("--clip-grad must be >= 0 (0 = off)");
  if (o.weight_decay < 0) return bad("--weight-decay must be >= 0");
  if (!(o.adam_beta1 >= 0 && o.adam_beta1 < 1)) return bad("--adam-beta1 must be in [0, 1)");
  if (!(o.adam_beta2 >= 0 && o.adam_beta2 < 1)) return bad("--adam-beta2 must be in [0, 1)");
  if (!(o.adam_eps > 0)) return bad("--adam-eps must be > 0");
  if (o.eval_interval < 0) return bad("--eval-interval must be >= 0");
  if (o.eval_iters < 1) return bad("--eval-iters must be >= 1");
  if (o.eval_metrics && o.valid_data_path.empty())
    return bad("--eval-metrics measures on the validation batches: give --valid-data-path too");
  if (o.log_interval < 1) return bad("--log-interval must be >= 1");
  if (o.profile_steps < 0) return bad("--profile-steps must be >= 0 (0 = off)");
  if (o.save_interval < 0) return bad("--save-interval must be >= 0 (0 = after the last step only)");
  if (o.save_keep < 0) return bad("--save-keep must be >= 0 (0 = keep all)");
  if (o.save_interval > 0 && o.save.empty()) return bad("--save-interval needs --save DIR (where checkpoints go)");
  if (o.exit_duration_in_mins < 0) return bad("--exit-duration-in-mins must be >= 0 (0 = off)");
  if (o.threads < 0) return bad("--threads must be >= 0 (0 = OMP_NUM_THREADS or all cores)");
  if (o.peak_tflops < 0) return bad("--peak-tflops must be >= 0");
  if (o.nan_policy != "abort" && o.nan_policy != "skip")
    return bad("--nan-policy '" + o.nan_policy + "': use abort or skip");
  if (!(o.comm_timeout_s >= 0)) return bad("--comm-timeout-s must be >= 0 (0 = off)");
  OM_RETURN_IF_ERROR(parse_fault(o.inject_fault).status());
  if (o.device != "cpu" && o.device != "cuda" && o.device != "auto")
    return bad("--device '" + o.device + "': use cpu, cuda or auto");
  if (o.dtype != "f32" && o.dtype != "bf16" && o.dtype != "auto")
    return bad("--dtype '" + o.dtype + "': use f32, bf16 or auto");
  if (o.dtype == "bf16" && o.device == "cpu")
    return bad("--dtype bf16 runs on CUDA only (the CPU path is f32); use --dtype f32 or auto with --device cpu");
  if (o.cuda_graphs && o.device == "cpu") return bad("--cuda-graphs needs --device cuda (or auto on a GPU node)");
  if (o.ddp_bucket_size < 1) return bad("--ddp-bucket-size must be >= 1 (elements per gradient bucket)");
  if (o.vocab_size < 0 || o.seq_length < 0) return bad("--vocab-size and --seq-length must be >= 0 (0 = default)");
  return Status::Ok();
}


StatusOr<ParseOutcome> parse_train_options(int argc, char** argv, int world_size, TrainOptions* out) {
  TrainOptions o;
  std::string config_file;
  po::options_description desc = make_options(&o, &config_file);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(canonical_args(argc, argv)).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return ParseOutcome::kHelpShown;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) return Status::NotFound("--config '" + path + "': cannot open the file");
      po::parsed_options file = po::parse_config_file(in, desc, /*allow_unregistered=*/true);
      OM_RETURN_IF_ERROR(canonicalise(&file, path));
      po::store(file, vm);  // values already stored from the command line are kept
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return Status::InvalidArgument(std::string(e.what()) + "; run ortho_megatron --help for the flags");
  }
  if (o.global_batch_size == 0) o.global_batch_size = o.micro_batch_size * o.dp;
  if (o.lr_decay_iters == 0) o.lr_decay_iters = o.train_iters;
  OM_RETURN_IF_ERROR(validate_train_options(o, world_size));
  *out = o;
  return ParseOutcome::kRun;
}

StatusOr<DType> resolve_dtype(const std::string& flag, Device device) {
  const bool cuda = device.kind == DeviceKind::kCuda;
  if (flag == "f32") return DType::kF32;
  if (flag == "auto") return cuda ? DType::kBF16 : DType::kF32;
  if (flag != "bf16") return Status::InvalidArgument("--dtype '" + flag + "': use f32, bf16 or auto");
  if (!cuda) {
    return Status::InvalidArgument("--dtype bf16 runs on CUDA only and this rank trains on " + device_name(device) +
                                   " (the CPU path is f32); use --dtype f32 or auto, or --device cuda");
  }
  return DType::kBF16;
}

StatusOr<Device> resolve_device(const std::string& flag, int local_rank) {
  if (flag == "cpu") return Device::Cpu();
  if (flag != "cuda" && flag != "auto") return Status::InvalidArgument("--device '" + flag + "': use cpu, cuda or auto");
  const int gpus = device_memory::cuda_device_count();  // 0 in a build without CUDA
  if (flag == "auto") return local_rank < gpus ? Device::Cuda(local_rank) : Device::Cpu();
  if (!OM_WITH_CUDA) {
    return Status::Unavailable("--device cuda: this binary was built without CUDA; rebuild with -DOM_WITH_CUDA=ON "
                               "(nvcc on PATH) or train with --device cpu");
  }
  if (gpus == 0) {
    return Status::Unavailable("--device cuda: no GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), or "
                               "train with --device cpu");
  }
  if (local_rank >= gpus) {
    return Status::InvalidArgument(format_message(
        "--device cuda: this rank is number %d on its node but the node shows %d GPU(s); start at most one rank per "
        "GPU per node (mpirun --map-by ppr:%d:node, srun --ntasks-per-node=%d)",
        local_rank, gpus, gpus, gpus));
  }
  return Device::Cuda(local_rank);
}

StatusOr<FaultInjection> parse_fault(const std::string& spec) {
  FaultInjection f;
  if (spec.empty()) return f;
  const auto bad = [&] {
    return Status::InvalidArgument("--inject-fault '" + spec + "': use nan@STEP or hang@STEP, optionally :RANK "
                                   "(e.g. nan@3:1)");
  };
  const size_t at = spec.find('@');
  if (at == std::string::npos) return bad();
  const std::string kind = spec.substr(0, at);
  if (kind == "nan") {
    f.kind = FaultInjection::Kind::kNan;
  } else if (kind == "hang") {
    f.kind = FaultInjection::Kind::kHang;
  } else {
    return bad();
  }
  const std::string rest = spec.substr(at + 1);
  const size_t colon = rest.find(':');
  try {
    size_t used = 0;
    const std::string step = rest.substr(0, colon);
    f.step = std::stoll(step, &used);
    if (used != step.size() || f.step < 1) return bad();
    if (colon != std::string::npos) {
      const std::string rank = rest.substr(colon + 1);
      f.rank = std::stoi(rank, &used);
      if (used != rank.size() || f.rank < 0) return bad();
    }
  } catch (const std::exception&) {
    return bad();
  }
  return f;
}

}  // namespace om
