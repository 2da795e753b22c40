// The qwenbox binary end to end: the CLI contracts external checks rely on, and bad input that
// must end in a clear message and exit code 1, never a crash.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "common/model_runner.h"
#include "common/reference.h"
#include "cli/cli_test_util.h"
#include "common/run_command.h"
#include "util/child_process.h"
#include "common/test_paths.h"
#include "kernels/exec_context.h"
#include "model/loader.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace qb {
namespace {

using test::DataPath;
using test::RunCommand;

using test::kQwenbox;

std::string Ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    if (!s.empty()) s += ',';
    s += std::to_string(id);
  }
  return s;
}

void ExpectCleanFailure(const test::CommandResult& r, const std::string& expect) {
  EXPECT_TRUE(r.exited) << "killed by signal " << r.signal << "\n" << r.err;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(expect), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(CliTest, LogitsJsonContract) {
  const test::Reference ref = test::LoadReference(DataPath("micro-qwen2/reference/f32/zh_sentence.json"));
  auto r = RunCommand({kQwenbox, "logits", "--model", DataPath("micro-qwen2"), "--ids", Ids(ref.token_ids)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = ParseJson(r.out, "stdout");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ((*j)["n_vocab"], 1024);
  ASSERT_EQ((*j)["logits"].size(), 1u);
  const auto row = (*j)["logits"][0].get<std::vector<float>>();
  EXPECT_LE(test::MaxAbsDiff(row.data(), ref.last_logits.data(), row.size()), 1e-4f);

  auto all = RunCommand({kQwenbox, "logits", "--model", DataPath("micro-qwen2/micro-qwen2-q8_0.gguf"), "--ids",
                         "1, 2,3", "--all-positions"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(ParseJson(all.out, "stdout").value()["logits"].size(), 3u);
}

TEST(CliTest, GenerateGreedyMatchesTheReference) {
  const test::Reference ref = test::LoadReference(DataPath("micro-qwen2/reference/q4_k_m_dequant_f32/en_sentence.json"));
  auto r = RunCommand({kQwenbox, "generate", "--model", DataPath("micro-qwen2/micro-qwen2-q4_k_m.gguf"), "--ids",
                       Ids(ref.token_ids), "--max-tokens", "16", "--temperature", "0", "--kernels", "reference", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseJson(r.out, "stdout").value()["ids"].get<std::vector<int32_t>>(), ref.greedy_ids);
}

TEST(CliTest, SeededSamplingIsReproducible) {
  const std::vector<std::string> cmd = {kQwenbox, "generate", "--model", DataPath("micro-qwen2"), "--ids", "5,6,7",
                                        "--max-tokens", "12", "--temperature", "1.5", "--top-k", "50",
                                        "--top-p", "0.95", "--seed", "9", "--json"};
  auto a = RunCommand(cmd), b = RunCommand(cmd);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  auto ids = ParseJson(a.out, "stdout").value()["ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(ids.size(), 12u);
  auto greedy = RunCommand({kQwenbox, "generate", "--model", DataPath("micro-qwen2"), "--ids", "5,6,7", "--max-tokens",
                            "12", "--json"});
  EXPECT_NE(a.out, greedy.out);  // generation_config says greedy; sampling at 1.5 differs
}

TEST(CliTest, MakeModelThenInfoAndLogits) {
  const std::string dir = test::ScratchDir();
  for (const std::string fmt : {"safetensors", "gguf"}) {
    const std::string out = dir + (fmt == "gguf" ? "/micro.gguf" : "/micro");
    auto mk = RunCommand({kQwenbox, "make-model", "--preset", "micro", "--out", out, "--format", fmt, "--seed", "3"});
    ASSERT_EQ(mk.exit_code, 0) << mk.err;
    auto info = RunCommand({kQwenbox, "info", "--model", out, "--json"});
    ASSERT_EQ(info.exit_code, 0) << info.err;
    auto j = ParseJson(info.out, "stdout").value();
    EXPECT_EQ(j["parameters"], 2099456);
    EXPECT_EQ(j["num_layers"], 2);
    EXPECT_EQ(j["format"], fmt);
    auto lg = RunCommand({kQwenbox, "logits", "--model", out, "--ids", "1,2"});
    EXPECT_EQ(lg.exit_code, 0) << lg.err;
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/micro/tokenizer.json"));
  auto text = RunCommand({kQwenbox, "info", "--model", dir + "/micro"});
  EXPECT_NE(text.out.find("parameters:     2099456"), std::string::npos) << text.out;
}

TEST(CliTest, TokenizerCommands) {
  const std::string dir = test::ScratchDir();
  const std::string tok = DataPath("tokenizer/qwen2.5");
  test::WriteBytes(dir + "/in.jsonl", "{\"text\": \"Hello world\"}\n\n{\"text\": \"<|im_end|>\"}\n");
  auto r = RunCommand({kQwenbox, "tokenize", "--model", tok, "--jsonl", dir + "/in.jsonl"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ids\": [9707, 1879]}\n{\"ids\": [151645]}\n");
  auto t = RunCommand({kQwenbox, "tokenize", "--model", tok, "--text", "Hello world"});
  EXPECT_EQ(t.out, "{\"ids\": [9707, 1879]}\n");
  auto d = RunCommand({kQwenbox, "detokenize", "--model", tok, "--ids", "9707,1879,151645"});
  EXPECT_EQ(d.out, "Hello world<|im_end|>");
  test::WriteBytes(dir + "/m.json", R"([{"role": "user", "content": "Hi"}])");
  auto c = RunCommand({kQwenbox, "chat-template", "--model", tok, "--messages", dir + "/m.json", "--add-generation-prompt"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.out,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  ExpectCleanFailure(RunCommand({kQwenbox, "chat-template", "--model", DataPath("micro-qwen2"), "--messages", dir + "/m.json"}),
                     "no chat template");
  test::WriteBytes(dir + "/bad.jsonl", "{\"txt\": 1}\n");
  ExpectCleanFailure(RunCommand({kQwenbox, "tokenize", "--model", tok, "--jsonl", dir + "/bad.jsonl"}), "line 1");
  ExpectCleanFailure(RunCommand({kQwenbox, "detokenize", "--model", tok, "--ids", "99999999"}), "not in the vocabulary");
}

TEST(CliTest, GenerateFromTextAndChat) {
  const std::string dir = test::ScratchDir() + "/tiny";
  ASSERT_EQ(RunCommand({kQwenbox, "make-model", "--preset", "tiny", "--out", dir}).exit_code, 0);
  auto p = RunCommand({kQwenbox, "generate", "--model", dir, "--prompt", "Hello", "--max-tokens", "5", "--temperature",
                       "0", "--ignore-eos", "--json"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto j = ParseJson(p.out, "stdout").value();
  EXPECT_EQ(j["ids"].size(), 5u);
  ASSERT_TRUE(j["text"].is_string());
  // The text is the decode of the ids.
  const std::string ids = Ids(j["ids"].get<std::vector<int32_t>>());
  auto d = RunCommand({kQwenbox, "detokenize", "--model", dir, "--ids", ids});
  EXPECT_EQ(d.out, j["text"].get<std::string>());
  auto streamed = RunCommand({kQwenbox, "generate", "--model", dir, "--prompt", "Hello", "--max-tokens", "5",
                              "--temperature", "0", "--ignore-eos"});
  EXPECT_EQ(streamed.out, j["text"].get<std::string>() + "\n");
  auto c = RunCommand({kQwenbox, "generate", "--model", dir, "--chat", "Hi there", "--max-tokens", "3", "--json"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ExpectCleanFailure(RunCommand({kQwenbox, "generate", "--model", dir, "--prompt", "a", "--ids", "1"}), "exactly one");
}

// --kernels picks one SIMD path by name; every path the CPU has gives the reference's greedy
// continuation, and a path it lacks is refused with the reason.
TEST(CliTest, KernelsOptionSelectsAPath) {
  const test::Reference ref = test::LoadReference(DataPath("micro-qwen2/reference/f32/zh_sentence.json"));
  const std::string best(kernels::IsaName(kernels::DetectIsa()));
  for (const std::string isa : {"scalar", "avx2", "avx512vnni", "avx512bf16"}) {
    auto r = RunCommand({kQwenbox, "generate", "--model", DataPath("micro-qwen2"), "--ids", Ids(ref.token_ids),
                         "--max-tokens", "8", "--temperature", "0", "--kernels", isa, "--json"});
    if (kernels::IsaFromName(isa) > kernels::DetectIsa()) {
      ExpectCleanFailure(r, "this CPU's best path is " + best);
      continue;
    }
    ASSERT_EQ(r.exit_code, 0) << isa << ": " << r.err;
    const auto ids = ParseJson(r.out, "stdout").value()["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(ids, std::vector<int32_t>(ref.greedy_ids.begin(), ref.greedy_ids.begin() + 8)) << isa;
  }
}

TEST(CliTest, BadInputFailsCleanly) {
  const std::string dir = test::ScratchDir();
  ExpectCleanFailure(RunCommand({kQwenbox, "logits", "--model", "/no/such/model", "--ids", "1"}), "/no/such/model");
  ExpectCleanFailure(RunCommand({kQwenbox, "logits", "--model", DataPath("micro-qwen2"), "--ids", "1,x"}),
                     "comma-separated");
  ExpectCleanFailure(RunCommand({kQwenbox, "logits", "--model", DataPath("micro-qwen2"), "--ids", "1,99999"}),
                     "outside the vocabulary");
  ExpectCleanFailure(RunCommand({kQwenbox, "generate", "--model", DataPath("micro-qwen2"), "--ids", "1",
                                 "--max-tokens", "100000"}),
                     "context length");
  ExpectCleanFailure(RunCommand({kQwenbox, "generate", "--model", DataPath("micro-qwen2"), "--ids", "1",
                                 "--top-p", "0"}),
                     "--top-p");
  ExpectCleanFailure(RunCommand({kQwenbox, "make-model", "--preset", "huge", "--out", dir + "/x"}), "unknown preset");
  ExpectCleanFailure(RunCommand({kQwenbox, "logits", "--model", DataPath("micro-qwen2"), "--ids", "1", "--kernels",
                                 "sse9"}),
                     "not one of fast, avx512bf16, avx512vnni, avx2, scalar, reference");

  // Truncated and corrupt checkpoints.
  const std::string gguf = test::ReadBytes(DataPath("micro-qwen2/micro-qwen2-q8_0.gguf"));
  test::WriteBytes(dir + "/cut.gguf", gguf.substr(0, gguf.size() / 2));
  ExpectCleanFailure(RunCommand({kQwenbox, "logits", "--model", dir + "/cut.gguf", "--ids", "1"}), "truncated");
  test::WriteBytes(dir + "/v9.gguf", std::string("GGUF\x09\0\0\0", 8) + std::string(16, '\0'));
  ExpectCleanFailure(RunCommand({kQwenbox, "info", "--model", dir + "/v9.gguf"}), "version 9 is not supported");
  const std::string st_dir = dir + "/st";
  std::filesystem::create_directories(st_dir);
  std::filesystem::copy_file(DataPath("micro-qwen2/config.json"), st_dir + "/config.json");
  const std::string st = test::ReadBytes(DataPath("micro-qwen2/model.safetensors"));
  test::WriteBytes(st_dir + "/model.safetensors", st.substr(0, st.size() - 100));
  ExpectCleanFailure(RunCommand({kQwenbox, "logits", "--model", st_dir, "--ids", "1"}), "past the end of the data");
  test::WriteBytes(st_dir + "/config.json", "{\"hidden_size\": ");
  ExpectCleanFailure(RunCommand({kQwenbox, "logits", "--model", st_dir, "--ids", "1"}), "config.json");

  // Usage errors come from the option parser: non-zero, no crash.
  auto usage = RunCommand({kQwenbox, "logits", "--ids", "1"});
  EXPECT_TRUE(usage.exited);
  EXPECT_NE(usage.exit_code, 0);
  EXPECT_NE(usage.err.find("--model"), std::string::npos) << usage.err;
}

// perplexity: llama-perplexity's definition (chunks of --ctx from an empty cache, the second half
// of each scored) against the model's own logits over each chunk, computed here.
TEST(CliTest, PerplexityScoresTheSecondHalfOfEachChunk) {
  const std::string dir = test::ScratchDir();
  std::string text;
  for (int i = 0; i < 40; ++i) text += "Qwen2 reads text; 模型 scores it " + std::to_string(i * 7919 % 1000) + ". ";
  test::WriteBytes(dir + "/text.txt", text);
  auto r = RunCommand({kQwenbox, "perplexity", "--model", DataPath("micro-qwen2"), "--file", dir + "/text.txt", "--ctx",
                       "32", "--chunks", "3", "--batch", "5", "--kv-dtype", "f32", "--kernels", "reference", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = ParseJson(r.out, "stdout");
  ASSERT_TRUE(j.ok()) << r.out;
  auto model = LoadModel(DataPath("micro-qwen2"));
  auto tok = LoadTokenizer(DataPath("micro-qwen2"));
  ASSERT_TRUE(model.ok() && tok.ok());
  const std::vector<int32_t> ids = (*tok)->Encode(text);
  ASSERT_GE(ids.size(), 96u);
  double nll = 0;
  int count = 0;
  for (size_t c = 0; c < 3; ++c) {
    const std::vector<int32_t> chunk(ids.begin() + static_cast<std::ptrdiff_t>(c * 32),
                                     ids.begin() + static_cast<std::ptrdiff_t>(c * 32 + 32));
    const auto logits = test::AllPositionLogits(*model->model, chunk);
    for (size_t p = 16; p + 1 < 32; ++p, ++count) nll -= LogprobsOf(logits[p], chunk[p + 1], 0).logprob;
  }
  EXPECT_EQ((*j)["scored_tokens"], count);
  EXPECT_EQ((*j)["text_tokens"], ids.size());
  EXPECT_NEAR((*j)["nll"].get<double>(), nll / count, 1e-5);
  EXPECT_NEAR((*j)["ppl"].get<double>(), std::exp(nll / count), std::exp(nll / count) * 1e-5);
  EXPECT_GT((*j)["ppl_stderr"].get<double>(), 0.0);
  EXPECT_NE(r.err.find("[3]"), std::string::npos) << r.err;  // the running estimate per chunk
  // Against a reference: the Q8_0 file's distributions against the F32 checkpoint's, per token.
  const std::string q8 = DataPath("micro-qwen2/micro-qwen2-q8_0.gguf");
  auto kl = RunCommand({kQwenbox, "perplexity", "--model", q8, "--kl-reference", DataPath("micro-qwen2"), "--file",
                        dir + "/text.txt", "--ctx", "32", "--chunks", "3", "--kv-dtype", "f32", "--kernels", "reference", "--json"});
  ASSERT_EQ(kl.exit_code, 0) << kl.err;
  auto k = ParseJson(kl.out, "stdout");
  ASSERT_TRUE(k.ok()) << kl.out;
  auto quantized = LoadModel(q8);
  ASSERT_TRUE(quantized.ok());
  double kld = 0, top = 0;
  for (size_t c = 0; c < 3; ++c) {
    const std::vector<int32_t> chunk(ids.begin() + static_cast<std::ptrdiff_t>(c * 32),
                                     ids.begin() + static_cast<std::ptrdiff_t>(c * 32 + 32));
    const auto p = test::AllPositionLogits(*model->model, chunk);
    const auto q = test::AllPositionLogits(*quantized->model, chunk);
    for (size_t i = 16; i + 1 < 32; ++i) {
      kld += KlDivergence(p[i], q[i]);
      top += Argmax(p[i]) == Argmax(q[i]) ? 1 : 0;
    }
  }
  const auto& ref = (*k)["reference"];
  EXPECT_NEAR(ref["ppl"].get<double>(), (*j)["ppl"].get<double>(), (*j)["ppl"].get<double>() * 1e-5);
  EXPECT_NEAR(ref["kld_mean"].get<double>(), kld / count, 1e-6);
  EXPECT_GT(ref["kld_mean"].get<double>(), 0.0);
  EXPECT_NEAR(ref["same_top"].get<double>(), top / count, 1e-9);
  EXPECT_LE(ref["kld_median"].get<double>(), ref["kld_p99"].get<double>());
  EXPECT_LE(ref["kld_p99"].get<double>(), ref["kld_max"].get<double>());
  ExpectCleanFailure(RunCommand({kQwenbox, "perplexity", "--model", DataPath("micro-qwen2"), "--file", dir + "/text.txt",
                                 "--ctx", "4096"}),
                     "fewer than one chunk");
  ExpectCleanFailure(RunCommand({kQwenbox, "perplexity", "--model", DataPath("micro-qwen2"), "--file", dir + "/text.txt",
                                 "--ctx", "100000"}),
                     "longer than the model's context");
  ExpectCleanFailure(RunCommand({kQwenbox, "perplexity", "--model", DataPath("micro-qwen2"), "--file", dir + "/none.txt"}),
                     "none.txt");
}

// SIGTERM while `serve` is still starting (here: blocked opening an API key file that is a FIFO
// nobody writes, as a slow model load would be) ends it at once with 128 + 15, instead of
// waiting until the server is ready.
TEST(CliTest, SigtermWhileStartingExitsAtOnce) {
  const std::string fifo = (std::filesystem::temp_directory_path() / ("qb-key-fifo-" + std::to_string(::getpid()))).string();
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl(kQwenbox.c_str(), kQwenbox.c_str(), "--log-level", "error", "serve", "--port", "0", "--api-key-file",
            fifo.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Opening the FIFO's write end succeeds once serve has opened it to read: it is then past its
  // start-up into reading the key, which blocks while this end stays open and silent.
  int writer = -1;
  for (int i = 0; i < 3000 && writer < 0; ++i) {
    writer = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (writer < 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(writer, 0) << "serve never opened the key file";
  const ChildExit end = StopChild(pid, 20);
  if (writer >= 0) ::close(writer);
  ::unlink(fifo.c_str());
  EXPECT_FALSE(end.killed) << "serve ignored SIGTERM while starting";
  ASSERT_TRUE(WIFEXITED(end.status)) << "signal " << (WIFSIGNALED(end.status) ? WTERMSIG(end.status) : 0);
  EXPECT_EQ(WEXITSTATUS(end.status), 128 + SIGTERM);
}

}  // namespace
}  // namespace qb
