/*
 * base.h: what nearly every kiln .c file needs: errors, allocation, cleanup, logging, and the
 * compiler-enforced banned-function list (included last, after the standard headers it poisons).
 */
#ifndef KILN_BASE_BASE_H
#define KILN_BASE_BASE_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/cleanup.h"
#include "base/error.h"
#include "base/log.h"
#include "base/str.h"

#include "base/banned.h"

#endif
