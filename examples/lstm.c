#include <attn/attn.h>
#include <stdio.h>

enum { B = 4, T = 50, I = 32, H = 64 };

static int fail(attn_status st, attn_rnn *lstm)
{
    fprintf(stderr, "%s: %s\n", attn_status_str(st), attn_last_error());
    attn_rnn_destroy(lstm);
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "lstm.safetensors";
    attn_rnn_options o;
    attn_rnn_options_init(&o);           /* defaults + struct_size */
    o.cell = ATTN_CELL_LSTM;
    o.input_size = I;
    o.hidden_size = H;
    o.num_layers = 2;

    attn_rnn *lstm = NULL;
    attn_status st = attn_rnn_create(&lstm, &o);
    if (st != ATTN_OK)
        return fail(st, lstm);
    /* Weights of torch.nn.LSTM(32, 64, num_layers=2, batch_first=True), saved as safetensors. */
    st = attn_params_load(attn_rnn_params(lstm), path, NULL, ATTN_LOAD_REJECT_UNKNOWN);
    if (st != ATTN_OK)
        return fail(st, lstm);

    static float x[B * T * I], y[B * T * H]; /* batch-first: [B, T, I] and [B, T, H] */
    for (int i = 0; i < B * T * I; i++)
        x[i] = (float)(i % 11 - 5) / 8;
    /* ws NULL: scratch memory per call (reuse an attn_workspace in a loop); h0, c0 NULL: zeros */
    st = attn_rnn_forward(lstm, NULL, B, T, x, NULL, NULL, y, NULL, NULL);
    if (st != ATTN_OK)
        return fail(st, lstm);

    double sum = 0;
    for (int i = 0; i < B * T * H; i++)
        sum += y[i];
    const float *last = &y[(T - 1) * H]; /* y[0, T-1, :] */
    printf("y[0, %d, 0:4] = %.6f %.6f %.6f %.6f\n", T - 1, last[0], last[1], last[2], last[3]);
    printf("mean(y) = %.6f\n", sum / (B * T * H));
    attn_rnn_destroy(lstm);
    return 0;
}
