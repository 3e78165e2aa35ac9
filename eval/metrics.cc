#include "eval/metrics.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace om {

double first_token_chance(int64_t T) {
  OM_CHECK(T >= 2, "first_token_chance: T = %ld must be >= 2 (query 0 is excluded)", static_cast<long>(T));
  double h = 0.0;  // H_T
  for (int64_t k = 1; k <= T; ++k) h += 1.0 / static_cast<double>(k);
  return (h - 1.0) / static_cast<double>(T - 1);
}

double kurtosis(const float* x, int64_t n) {
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  double m2 = 0.0, m4 = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - mean, d2 = d * d;
    m2 += d2;
    m4 += d2 * d2;
  }
  m2 /= static_cast<double>(n);
  m4 /= static_cast<double>(n);
  return m2 > 0.0 ? m4 / (m2 * m2) : 0.0;
}

MetricsAccumulator::MetricsAccumulator(int64_t n_layers, int64_t n_heads, int64_t seq_length)
    : L_(n_layers), H_(n_heads), T_(seq_length) {
  const size_t lh = static_cast<size_t>(L_ * H_);
  mass_.assign(lh, 0.0);
  argmax_.assign(lh, 0.0);
  queries_.assign(lh, 0.0);
  key_sum_.assign(lh * static_cast<size_t>(T_), 0.0);
  key_count_.assign(lh * static_cast<size_t>(T_), 0.0);
  for (auto* v : {&kf_, &kr_, &mf_, &mr_, &nf_, &nr_}) v->assign(static_cast<size_t>(L_), 0.0);
}

namespace {

template <typename T>
void add_attention(const T* p, int64_t B, int64_t H, int64_t S, size_t base, std::vector<double>& mass,
                   std::vector<double>& argmax, std::vector<double>& queries, std::vector<double>& key_sum,
                   std::vector<double>& key_count) {
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const size_t lh = base + static_cast<size_t>(h);
      for (int64_t i = 1; i < S; ++i) {  // query 0 (which sees only key 0) is excluded
        const T* row = p + ((b * H + h) * S + i) * S;
        int64_t best = 0;
        for (int64_t j = 0; j <= i; ++j) {
          if (row[j] > row[best]) best = j;
          key_sum[lh * static_cast<size_t>(S) + static_cast<size_t>(j)] += static_cast<double>(row[j]);
          key_count[lh * static_cast<size_t>(S) + static_cast<size_t>(j)] += 1.0;
        }
        mass[lh] += static_cast<double>(row[0]);
        argmax[lh] += best == 0 ? 1.0 : 0.0;
        queries[lh] += 1.0;
      }
    }
  }
}

}  // namespace

void MetricsAccumulator::AddAttention(int64_t layer, ConstTensorView probs, int64_t head0) {
  OM_CHECK(probs.ndim() == 4 && head0 + probs.dim(1) <= H_ && probs.dim(2) == T_ && probs.dim(3) == T_ && layer < L_,
           "MetricsAccumulator::AddAttention: probs %s at head %ld, want (B, <= %ld, %ld, %ld) for layer %ld < %ld",
           probs.ToString().c_str(), static_cast<long>(head0), static_cast<long>(H_), static_cast<long>(T_),
           static_cast<long>(T_), static_cast<long>(layer), static_cast<long>(L_));
  const size_t base = static_cast<size_t>(layer * H_ + head0);
  const int64_t Hl = probs.dim(1);
  if (probs.dtype == DType::kF64) {
    add_attention(probs.data_as<const double>(), probs.dim(0), Hl, T_, base, mass_, argmax_, queries_, key_sum_,
                  key_count_);
  } else {
    add_attention(probs.data_as<const float>(), probs.dim(0), Hl, T_, base, mass_, argmax_, queries_, key_sum_,
                  key_count_);
  }
}

void MetricsAccumulator::Reduce(Comm& comm) {
  for (std::vector<double>* v : {&mass_, &argmax_, &queries_, &key_sum_, &key_count_, &kf_, &kr_, &mf_, &mr_, &nf_, &nr_}) {
    comm.all_reduce(make_view(v->data(), DType::kF64, Shape{static_cast<int64_t>(v->size())}, Device::Cpu(),
                              "eval.metrics"),
                    ReduceOp::kSum);
  }
}

void MetricsAccumulator::AddHidden(int64_t layer, ConstTensorView x) {
  OM_CHECK(x.ndim() == 3 && x.dim(1) == T_ && x.dtype == DType::kF32 && layer < L_,
           "MetricsAccumulator::AddHidden: x %s, want (B, %ld, C) f32 for layer %ld", x.ToString().c_str(),
           static_cast<long>(T_), static_cast<long>(layer));
  const int64_t B = x.dim(0), C = x.dim(2);
  const float* data = x.data_as<const float>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t l = 0; l < T_; ++l) {
      const float* row = data + (b * T_ + l) * C;
      double maxabs = 0.0;
      for (int64_t c = 0; c < C; ++c) maxabs = std::max(maxabs, std::fabs(static_cast<double>(row[c])));
      const double k = kurtosis(row, C);
      if (l == 0) {
        kf_[layer] += k;
        mf_[layer] += maxabs;
        nf_[layer] += 1.0;
      } else {
        kr_[layer] += k;
        mr_[layer] += maxabs;
        nr_[layer] += 1.0;
      }
    }
  }
}

void MetricsAccumulator::Fill(EvalReport& r) const {
  r.seq_length = T_;
  r.chance = first_token_chance(T_);
  r.first_mass.assign(static_cast<size_t>(L_), std::vector<double>(static_cast<size_t>(H_), 0.0));
  r.first_argmax = r.first_mass;
  r.key_share.assign(static_cast<size_t>(L_), std::vector<std::vector<double>>(
                                                  static_cast<size_t>(H_), std::vector<double>(static_cast<size_t>(T_), 0.0)));
  double mass = 0.0, argmax = 0.0, queries = 0.0;
  for (int64_t l = 0; l < L_; ++l) {
    for (int64_t h = 0; h < H_; ++h) {
      const size_t lh = static_cast<size_t>(l * H_ + h);
      const double q = std::max(queries_[lh], 1.0);
      r.first_mass[l][h] = mass_[lh] / q;
      r.first_argmax[l][h] = argmax_[lh] / q;
      mass += mass_[lh];
      argmax += argmax_[lh];
      queries += queries_[lh];
      for (int64_t j = 0; j < T_; ++j) {
        const size_t k = lh * static_cast<size_t>(T_) + static_cast<size_t>(j);
        r.key_share[l][h][j] = key_count_[k] > 0 ? key_sum_[k] / key_count_[k] : 0.0;
      }
    }
  }
  r.first_mass_overall = queries > 0 ? mass / queries : 0.0;
  r.first_argmax_overall = queries > 0 ? argmax / queries : 0.0;
  r.kurtosis_first.assign(static_cast<size_t>(L_), 0.0);
  r.kurtosis_rest = r.maxabs_first = r.maxabs_rest = r.kurtosis_first;
  r.kurtosis_first_mean = r.kurtosis_rest_mean = r.maxabs_first_mean = r.maxabs_rest_mean = 0.0;
  for (int64_t l = 0; l < L_; ++l) {
    const double nf = std::max(nf_[l], 1.0), nr = std::max(nr_[l], 1.0);
    r.kurtosis_first[l] = kf_[l] / nf;
    r.kurtosis_rest[l] = kr_[l] / nr;
    r.maxabs_first[l] = mf_[l] / nf;
    r.maxabs_rest[l] = mr_[l] / nr;
    r.kurtosis_first_mean += r.kurtosis_first[l] / static_cast<double>(L_);
    r.kurtosis_rest_mean += r.kurtosis_rest[l] / static_cast<double>(L_);
    r.maxabs_first_mean += r.maxabs_first[l] / static_cast<double>(L_);
    r.maxabs_rest_mean += r.maxabs_rest[l] / static_cast<double>(L_);
  }
}

}  // namespace om
