/** @file
 * attn.h: the umbrella header of libattn; include this one. */
#ifndef ATTN_ATTN_H
#define ATTN_ATTN_H

#include "common.h"
#include "rnn.h"
#include "attention.h"
#include "memory.h"
#include "perceiver.h"
#include "analysis.h"

#endif /* ATTN_ATTN_H */
