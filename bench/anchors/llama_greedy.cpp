// Greedy continuation of a token-id prompt with llama.cpp, printed as token ids: the reference
// that export checks compare against (reference only; the product never runs it).
//
//   llama-greedy [--cvec CONTROL.gguf] MODEL.gguf N ID [ID ...]
//   llama-greedy [--cvec CONTROL.gguf] --argmax MODEL.gguf ID [ID ...]
//
// Prints the N greedy next-token ids on one line, space-separated (it does not stop at
// end-of-generation tokens, so both sides always compare N tokens). With --argmax: one forward
// pass over the given ids, printing the most likely next token after each position (teacher
// forcing: every position is compared on the same history). Exit status 1 with a message
// on stderr on any failure. Built by bench/anchors/llamacpp.sh against the libllama it builds.
#include "llama.h"
#include "gguf.h"
#include "ggml.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static void set_tokens(llama_batch_ext * batch, const llama_token * tokens, int32_t n, llama_pos pos0) {
    llama_batch_ext_clear(batch);
    for (int32_t i = 0; i < n; ++i) {
        const int32_t idx = llama_batch_ext_add_token(batch, 0, tokens[i]);
        const llama_pos pos = pos0 + i;
        llama_batch_ext_set_pos(batch, idx, &pos);
    }
    llama_batch_ext_set_output_logits(batch, n - 1, true);
}

// Reads a control vector as common_control_vector_load_one does: data[(N-1) * n_embd ...] holds
// direction.N (N >= 1), several tensors for one layer add up. Returns false with a message.
static bool load_cvec(const char * fname, std::vector<float> & data, int & n_embd) {
    ggml_context * ctx = nullptr;
    gguf_init_params params = { /* no_alloc */ false, &ctx };
    gguf_context * g = gguf_init_from_file(fname, params);
    if (!g) { fprintf(stderr, "cannot read control vector %s\n", fname); return false; }
    n_embd = -1;
    for (int i = 0; i < gguf_get_n_tensors(g); ++i) {
        const std::string name = gguf_get_tensor_name(g, i);
        if (name.rfind("direction.", 0) != 0) { fprintf(stderr, "unexpected tensor %s\n", name.c_str()); return false; }
        const int layer = std::atoi(name.c_str() + 10);
        ggml_tensor * t = ggml_get_tensor(ctx, name.c_str());
        if (layer < 1 || !t || t->type != GGML_TYPE_F32 || ggml_n_dims(t) != 1) { fprintf(stderr, "bad tensor %s\n", name.c_str()); return false; }
        if (n_embd < 0) n_embd = (int) t->ne[0];
        if (n_embd != (int) t->ne[0]) { fprintf(stderr, "tensor %s has another width\n", name.c_str()); return false; }
        data.resize(std::max(data.size(), (size_t) n_embd * layer), 0.0f);
        const float * src = (const float *) t->data;
        for (int j = 0; j < n_embd; ++j) data[(size_t) n_embd * (layer - 1) + j] += src[j];
    }
    gguf_free(g);
    ggml_free(ctx);
    if (n_embd < 0) { fprintf(stderr, "no direction tensors in %s\n", fname); return false; }
    return true;
}

int main(int argc, char ** argv) {
    std::string cvec_path;
    if (argc > 2 && std::string(argv[1]) == "--cvec") {
        cvec_path = argv[2];
        argv += 2;
        argc -= 2;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s [--cvec FILE] MODEL.gguf N ID [ID ...]  |  %s [--cvec FILE] --argmax MODEL.gguf ID [ID ...]\n", argv[0], argv[0]);
        return 1;
    }
    const bool argmax_mode = std::string(argv[1]) == "--argmax";
    const std::string path = argv[argmax_mode ? 2 : 1];
    const int n_predict = argmax_mode ? 1 : std::atoi(argv[2]);
    std::vector<llama_token> prompt;
    for (int i = 3; i < argc; ++i) prompt.push_back((llama_token) std::atoi(argv[i]));
    if (n_predict <= 0) {
        fprintf(stderr, "N must be positive\n");
        return 1;
    }

    llama_log_set([](enum ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(path.c_str(), mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", path.c_str());
        return 1;
    }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (llama_token t : prompt) {
        if (t < 0 || t >= n_vocab) {
            fprintf(stderr, "token id %d outside the vocabulary of %d\n", t, n_vocab);
            return 1;
        }
    }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = prompt.size() + n_predict;
    cp.n_batch = prompt.size();
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    if (!cvec_path.empty()) {
        std::vector<float> data;
        int n_embd = 0;
        if (!load_cvec(cvec_path.c_str(), data, n_embd)) return 1;
        const int n_layer = llama_model_n_layer(model);
        if (llama_set_adapter_cvec(ctx, data.data(), data.size(), n_embd, 1, n_layer - 1)) {
            fprintf(stderr, "llama.cpp refused the control vector\n");
            return 1;
        }
    }
    llama_sampler * smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    llama_batch_ext * batch = llama_batch_ext_init(ctx);
    set_tokens(batch, prompt.data(), (int32_t) prompt.size(), 0);
    if (argmax_mode) {
        for (int32_t i = 0; i < (int32_t) prompt.size(); ++i) llama_batch_ext_set_output_logits(batch, i, true);
        if (llama_process(ctx, LLAMA_PROCESS_TYPE_DECODE, batch)) {
            fprintf(stderr, "decode failed\n");
            return 1;
        }
        for (int32_t i = 0; i < (int32_t) prompt.size(); ++i) {
            const float * logits = llama_get_logits_ith(ctx, i);
            int best = 0;
            for (int v = 1; v < n_vocab; ++v) if (logits[v] > logits[best]) best = v;
            printf(i == 0 ? "%d" : " %d", best);
        }
        printf("\n");
    } else {
        int n_pos = 0;
        int n_tokens = (int) prompt.size();
        for (int i = 0; i < n_predict; ++i) {
            if (llama_process(ctx, LLAMA_PROCESS_TYPE_DECODE, batch)) {
                fprintf(stderr, "decode failed at step %d\n", i);
                return 1;
            }
            n_pos += n_tokens;
            llama_token next = llama_sampler_sample(smpl, ctx, -1);
            printf(i == 0 ? "%d" : " %d", next);
            set_tokens(batch, &next, 1, n_pos);
            n_tokens = 1;
        }
        printf("\n");
    }
    llama_batch_ext_free(batch);
    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
