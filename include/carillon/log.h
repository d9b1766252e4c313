/* One log sink for Carillon and for libwebsockets' own messages. */
#ifndef CARILLON_LOG_H
#define CARILLON_LOG_H

enum carillon_log_level { CARILLON_LOG_ERR, CARILLON_LOG_WARN, CARILLON_LOG_NOTICE, CARILLON_LOG_INFO, CARILLON_LOG_DEBUG };

void carillon_log_set_level(enum carillon_log_level level);
void carillon_log(enum carillon_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...) carillon_log(CARILLON_LOG_ERR, __VA_ARGS__)
#define log_warn(...) carillon_log(CARILLON_LOG_WARN, __VA_ARGS__)
#define log_notice(...) carillon_log(CARILLON_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) carillon_log(CARILLON_LOG_INFO, __VA_ARGS__)
#define log_debug(...) carillon_log(CARILLON_LOG_DEBUG, __VA_ARGS__)

#endif
