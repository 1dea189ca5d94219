      * Credit application record of the overnight loan extract (German credit
      * attributes). Categories carry the legacy codes (A11 .. A410), which the
      * credit-application schema accepts as aliases. 71 bytes per record.
       01  CREDIT-APPLICATION.
           05  STATUS-OF-EXISTING-CHECKING-ACCOUNT       PIC X(4).
           05  DURATION-IN-MONTH                         PIC 9(3).
           05  CREDIT-HISTORY                            PIC X(4).
           05  PURPOSE                                   PIC X(4).
           05  CREDIT-AMOUNT                  PIC S9(9) COMP-3.
           05  SAVINGS-ACCOUNT-AND-BONDS                 PIC X(4).
           05  PRESENT-EMPLOYMENT-SINCE                  PIC X(4).
           05  INSTALLMENT-RATE-IN-PERCENTAGE-OF-DISPOSABLE-INCOME
                                                         PIC 9(1).
           05  PERSONAL-STATUS-AND-SEX                   PIC X(4).
           05  OTHER-DEBTORS-OR-GUARANTORS               PIC X(4).
           05  PRESENT-RESIDENCE-SINCE                   PIC 9(1).
           05  PROPERTY                                  PIC X(4).
           05  AGE-IN-YEARS                              PIC S9(3).
           05  OTHER-INSTALLMENT-PLANS                   PIC X(4).
           05  HOUSING                                   PIC X(4).
           05  NUMBER-OF-EXISTING-CREDITS-AT-THIS-BANK   PIC 9(2).
           05  JOB                                       PIC X(4).
           05  NUMBER-OF-PEOPLE-BEING-LIABLE-TO-PROVIDE-MAINTENANCE-FOR
                                                         PIC 9(2).
           05  TELEPHONE                                 PIC X(4).
           05  FOREIGN-WORKER                            PIC X(4).
           05  FILLER                                    PIC X(2).
