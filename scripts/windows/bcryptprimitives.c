/* Wine 8.0 (Debian bookworm) lacks bcryptprimitives.dll, from which Rust's std (1.78 and later)
   takes ProcessPrng for its randomness. This stand-in answers it with BCryptGenRandom. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
