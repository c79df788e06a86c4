/*
 * The console UART (dev/uart.c): where its output goes and where its input comes from.
 */
#ifndef VMM_DEV_UART_H
#define VMM_DEV_UART_H

#include <stddef.h>

struct vmm_uart;

/* Sends guest output to fd (borrowed; -1 for none). Any thread. */
int vmm_uart_set_output(struct vmm_uart *u, int fd);
/* Serves a console socket at path: clients receive output and send input. */
int vmm_uart_listen(struct vmm_uart *u, const char *path);
/* Queues input bytes for the guest; returns how many fit. Any thread. */
int vmm_uart_input(struct vmm_uart *u, const void *p, size_t n);

#endif
