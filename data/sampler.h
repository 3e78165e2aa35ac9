// GptSampler: the training order (DESIGN.md invariant 4). The dataset's documents, concatenated in
// order, form one token stream; sample s of an epoch is the window of T+1 tokens starting at
// s·T (inputs = first T, targets = last T). Each epoch visits its samples in a permutation that is
// a pure function of (seed, epoch). So the k-th sample of the run — and therefore every batch — is a
// function of (seed, k) only: the same under any dp/tp layout and after any resume.
// Batches (Megatron's sampler): the global batch of step i holds samples [i·G, (i+1)·G) with
// G = micro_batch · accumulation · dp; micro-batch m of dp rank r takes rows
// [m·mb·dp + r·mb, m·mb·dp + (r+1)·mb) of it.
// BOS mode (bos_id >= 0, `--bos`): sample s is the tokenizer's "<s>" followed by the T stream tokens
// starting at s·T (windows no longer overlap by one token; samples_per_epoch = N / T), so every
// sequence has the same token at position 0, as Llama's tokenizer gives every document. PAPER.md
// ("What to expect at reduced scale"): that fixed first token is where first-token attention and the
// first token's outlier activations form; with windows at random offsets they do not show at CPU
// scale. Targets are the T stream tokens (the "<s>" is never a target).
// Thread safety: every method is const and keeps no cache; share one sampler between threads.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "data/indexed_dataset.h"

namespace om {

class GptSampler {
 public:
  // REQUIRES: the dataset holds at least T+1 tokens (T with bos_id >= 0). The dataset must outlive the
  // sampler. bos_id: -1 (plain windows) or the id placed at position 0 of every sample (BOS mode).
  GptSampler(const IndexedDataset& dataset, int64_t seq_length, uint64_t seed, int32_t bos_id = -1);

  int64_t samples_per_epoch() const;
  int32_t bos_id() const { return bos_id_; }  // -1: plain windows
  // The k-th sample of the run (k >= 0, any epoch): T+1 tokens into out.
  void Sample(int64_t k, std::span<int32_t> out) const;
  // Fills tokens and targets (each mb·T int32, row-major (mb, T)) for micro-batch `micro` of dp rank
  // `dp_rank` in the global batch that starts at sample `consumed`.
  void MicroBatch(int64_t consumed, int64_t micro, int64_t micro_batch, int64_t dp_rank, int64_t dp_size,
                  std::span<int32_t> tokens, std::span<int32_t> targets) const;

 private:
  // Position of sample i of the epoch's shuffled order (a bijection on [0, samples_per_epoch)).
  int64_t PermutedIndex(int64_t epoch, int64_t i) const;
  // Copies stream tokens [start, start + out.size()) into out, across document boundaries.
  void ReadStream(int64_t start, std::span<int32_t> out) const;

  const IndexedDataset* dataset_;
  int64_t seq_length_;
  uint64_t seed_;
  int32_t bos_id_;
  int64_t samples_per_epoch_;
  // document_starts_[d] = stream position of document d's first token; [num_documents] = num_tokens.
  std::vector<int64_t> document_starts_;
  // The permutation is a Feistel network on [0, 2^(2·feistel_half_bits_)) restricted to
  // [0, samples_per_epoch) by cycle walking (sampler.cc explains why not a stored shuffle).
  int feistel_half_bits_;
};

}  // namespace om
