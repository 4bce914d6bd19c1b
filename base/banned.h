/*
 * banned.h: functions kiln never calls (curl's banned list, enforced by the compiler).
 * Included last from base/base.h, after the standard headers that declare them.
 */
#ifndef KILN_BASE_BANNED_H
#define KILN_BASE_BANNED_H

#if defined(__GNUC__) && !defined(KILN_ALLOW_BANNED)
#pragma GCC poison strcpy strcat sprintf vsprintf gets strtok atoi atol atoll
#endif

#endif
